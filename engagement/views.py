"""The viewer app, /watch/: choose a profile, a home ranked for it, a player.

A browser is bound to one profile by choosing it (its viewer id in the Django session); every
page and the playback API (`engagement.api`) read that profile's data only, and no page carries
a platform key: ads reach the player through the public VAST/VMAP tags of the player id
`interlude-web`. /watch/ offers the demo's household (`selectors.watch_profiles`); the choice
accepts any viewer of the catalog (`selectors.watch_profile`), which is how the simulated
audience of the demo binds its hundreds of viewers, each in its own browser session.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from catalog.models import Title, Viewer
from engagement import selectors
from engagement.api import PROFILE_SESSION_KEY

PLAYER_ID = "interlude-web"
DEVICE = "desktop"  # what the web player reports to the ad server and in its sessions
INTRO_SECONDS = 90  # "Skip intro" jumps here (titles carry no intro marker of their own)
TIMESCALES = range(1, 601)  # ?timescale=N: N film seconds a second (tests, demos)
HOME_SECONDS = 300  # a cached home also follows the catalog's changes within this


def profile_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page of the bound profile (passed after `request`); without one, back to /watch/."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        viewer_id = request.session.get(PROFILE_SESSION_KEY)
        try:
            profile = selectors.watch_profile(viewer_id=viewer_id) if viewer_id else None
        except Viewer.DoesNotExist:
            profile = None
        if profile is None:
            return redirect("watch_profiles")
        return view(request, profile, *args, **kwargs)

    return wrapper


@require_GET
def profiles(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "engagement/profiles.html",
        {
            "profiles": selectors.watch_profiles(),
            "current": request.session.get(PROFILE_SESSION_KEY),
        },
    )


@require_POST
def profile_choose(request: HttpRequest, viewer_id: int) -> HttpResponse:
    """Bind this browser to the profile (a new session key, as at a login)."""
    try:
        profile = selectors.watch_profile(viewer_id=viewer_id)
    except Viewer.DoesNotExist:
        raise Http404("No such profile.") from None
    request.session.cycle_key()
    request.session[PROFILE_SESSION_KEY] = profile.viewer.pk
    return redirect("watch_home")


@require_GET
@profile_view
def home(request: HttpRequest, profile: selectors.WatchProfile) -> HttpResponse:
    """The profile's rows, rendered once per champion version and state of its history (see
    `selectors.watch_home_stamp`) and cached: some 230 cards cost ~30 ms of CPU to rank and
    render, a cached home ~5 ms (bench/watch.py)."""
    stamp = selectors.watch_home_stamp(viewer=profile.viewer)
    key = f"watch:home:{profile.viewer.pk}:{stamp}"
    rows_html = cache.get(key)
    if rows_html is None:
        rows = selectors.watch_home(viewer=profile.viewer, name=profile.name)
        player_url = reverse("watch_player", args=[0]).removesuffix("0")
        rows_html = render_to_string(
            "engagement/partials/home_rows.html", {"rows": rows, "player_url": player_url}
        )
        cache.set(key, rows_html, HOME_SECONDS)
    return render(request, "engagement/home.html", {"profile": profile, "rows_html": rows_html})


@require_GET
@profile_view
def player(request: HttpRequest, profile: selectors.WatchProfile, title_id: int) -> HttpResponse:
    """The player of one title (404 for a title the profile may not watch). `?t=S` starts at
    S seconds; `?timescale=N` runs the film N times faster than the clock (tests, demos)."""
    try:
        title = selectors.watch_title(viewer=profile.viewer, title_id=title_id)
    except Title.DoesNotExist:
        raise Http404("No such title for this profile.") from None
    start = _int_param(request, "t", range(0, title.duration_seconds))
    timescale = _int_param(request, "timescale", TIMESCALES) or 1
    breaks = [ad_break.offset_seconds for ad_break in title.ad_breaks.all()]
    return render(
        request,
        "engagement/player.html",
        {
            "profile": profile,
            "title": title,
            "genres": [genre.name for genre in title.genres.all()],
            "config": {
                "titleId": title.pk,
                "name": title.name,
                "duration": title.duration_seconds,
                "breaks": breaks,
                "intro": min(INTRO_SECONDS, title.duration_seconds - 1),
                "start": start or 0,
                "timescale": timescale,
                "ads": not profile.is_kids,
                "device": DEVICE,
                "vmapUrl": vmap_url(viewer=profile.viewer, title=title),
                "sessionsUrl": reverse("watch_session_open"),
                "homeUrl": reverse("watch_home"),
            },
        },
    )


def vmap_url(*, viewer: Viewer, title: Title) -> str:
    """The title's VMAP for this viewer, asked as the public web player (no key)."""
    query = {"player": PLAYER_ID, "viewer": viewer.external_id, "title": title.pk}
    return f"/vmap/1.0?{urlencode(query | {'device': DEVICE})}"


def _int_param(request: HttpRequest, name: str, allowed: range) -> int | None:
    value = request.GET.get(name, "")
    if value.isdigit() and int(value) in allowed:
        return int(value)
    return None
