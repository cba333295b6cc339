"""The ad tags' views: parse, check the player and the limits, decide, render.

Answers, so that a player always has something it understands:
- a request naming no player is not an ad request: 400 with the API's JSON error;
- a VAST tag with a bad parameter, an unknown or inactive player, a kids profile, a bot or no
  fill: a VAST with no `<Ad>` and an `<Error>` URL (the player reports 303 there), the reason
  in the URL and, in words, in a comment; always 200, since many players treat any other
  status as a network failure;
- over a rate limit: 429 with Retry-After (and, for VAST, the same empty document);
- VMAP has no error document: a bad parameter or unknown player is a 400 (JSON), and where
  no ads may play (kids profile, inactive player, bot) the schedule has no breaks.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote, urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ads.decisioning.engine import DecisionRequestError, decide
from ads.decisioning.index import current_index
from ads.delivery import latency
from ads.delivery.tokens import TOKEN_TTL
from ads.services.events import is_bot
from ads.services.players import player_for_tag
from ads.vast import params
from ads.vast import render as documents
from ads.vast.limits import limiter
from config.api import error_body

logger = logging.getLogger(__name__)

VAST_PATH = "/vast/4.2"
VMAP_PATH = "/vmap/1.0"
ERROR_PATH = "/vast/error"
XML = "application/xml; charset=utf-8"
EXPIRES_SECONDS = int(TOKEN_TTL.total_seconds())  # the tracking links' lifetime


def _xml(document: str, status: int = 200, retry_after: int | None = None) -> HttpResponse:
    response = HttpResponse(document.encode(), content_type=XML, status=status)
    # Fetched by players on any site, with no credentials; a pod is one viewer's, never cached.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "no-store"
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _json_error(code: str, field: str, message: str, status: int = 400) -> JsonResponse:
    response = JsonResponse(error_body(code, message, {field: [message]}), status=status)
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _error_url(request: HttpRequest, *, player: str, reason: str, field: str = "") -> str:
    query = f"?code=[ERRORCODE]&reason={reason}&player={quote(player[:64], safe='')}"
    if field:
        query += f"&field={field}"
    return request.build_absolute_uri(ERROR_PATH) + query


def _no_ads(
    request: HttpRequest,
    *,
    player: str,
    reason: str,
    message: str,
    field: str = "",
    status: int = 200,
    retry_after: int | None = None,
) -> HttpResponse:
    error_url = _error_url(request, player=player, reason=reason, field=field)
    return _xml(documents.vast_empty(error_url=error_url, message=message), status, retry_after)


def _client_address(request: HttpRequest) -> str:
    # The server's peer. X-Forwarded-For is not trusted (any client can write it): behind a
    # load balancer, have it pass the client's address as the peer (e.g. PROXY protocol).
    return request.META.get("REMOTE_ADDR") or "unknown"


def _is_bot(request: HttpRequest) -> bool:
    """As the tracking links judge: a tag is fetched by a viewer's player or browser, which
    always names itself, so a missing or blank User-Agent is a script's too (its trackers
    would not count: serving it would spend caps and budget on nothing)."""
    agent = request.headers.get("User-Agent", "")
    return not agent.strip() or is_bot(agent)


@require_GET
def vast_tag(request: HttpRequest) -> HttpResponse:
    """GET /vast/4.2: the pod for one ad break, as VAST 4.2 (parameters: `params.PARAMETERS`)."""
    player_id = request.GET.get("player", "")
    try:
        tag, decision_request = params.decision_request_of(request.GET)
    except params.NotAnAdRequest as error:
        return _json_error("invalid", "player", str(error))
    except params.TagError as error:
        return _no_ads(
            request,
            player=player_id,
            reason="invalid_parameter",
            field=error.field,
            message=error.message,
        )
    player = player_for_tag(public_id=tag.player)
    if player is None:
        return _no_ads(
            request,
            player=player_id,
            reason="unknown_player",
            field="player",
            message=f"No player has the id {tag.player[:64]!r}.",
        )
    if not player.is_active:
        return _no_ads(
            request, player=player_id, reason="inactive_player", message="This player is off."
        )
    if _is_bot(request):
        return _no_ads(
            request, player=player_id, reason="bot", message="No ads for automated agents."
        )
    retry_after = limiter.seconds_over(player, _client_address(request))
    if retry_after is not None:
        return _no_ads(
            request,
            player=player_id,
            reason="rate_limited",
            message="Too many ad requests; try again later.",
            status=429,
            retry_after=retry_after,
        )
    started = time.perf_counter()
    try:
        decision = decide(decision_request)
    except DecisionRequestError as error:
        field = {"title_id": "title", "ad_break_id": "break", "offset_seconds": "offset"}
        return _no_ads(
            request,
            player=player_id,
            reason="invalid_parameter",
            field=field.get(error.field, error.field),
            message=error.message,
        )
    latency.recorder.record((time.perf_counter() - started) * 1000)
    if not decision.pod:
        reason = decision.reason or "no_eligible_ads"
        return _no_ads(request, player=player_id, reason=reason, message=reason.replace("_", " "))
    return _xml(
        documents.vast_pod(
            decision,
            advertiser_names=current_index().advertiser_name,
            links=request.build_absolute_uri("/t/"),
            error_url=_error_url(request, player=player_id, reason="playback"),
            expires_seconds=EXPIRES_SECONDS,
        )
    )


@require_GET
def vmap_schedule(request: HttpRequest) -> HttpResponse:
    """GET /vmap/1.0: a title's ad breaks for one viewer, each with its VAST tag."""
    try:
        tag = params.tag_of(request.GET)
    except params.NotAnAdRequest as error:
        return _json_error("invalid", "player", str(error))
    except params.TagError as error:
        return _json_error("invalid", error.field, error.message)
    player = player_for_tag(public_id=tag.player)
    if player is None:
        return _json_error("invalid", "player", f"No player has the id {tag.player[:64]!r}.")
    retry_after = limiter.seconds_over(player, _client_address(request))
    if retry_after is not None:
        response = _json_error(
            "throttled", "player", "Too many ad requests; try again later.", status=429
        )
        response["Retry-After"] = str(retry_after)
        return response
    index = current_index()
    title = index.titles.get(tag.title)
    if title is None:
        return _json_error("invalid", "title", f"No title with id {tag.title}.")
    viewer = index.viewers.get(tag.viewer)
    if not player.is_active or viewer is None or viewer.is_kids or _is_bot(request):
        return _xml(documents.vmap([]))
    base = request.build_absolute_uri(VAST_PATH) + "?"
    common = {"player": tag.player, "viewer": tag.viewer, "title": title.id}
    breaks = []
    mid_rolls = 0
    for ad_break in index.breaks_by_title.get(title.id, ()):
        offset = ad_break.offset_seconds
        mid_rolls += 0 < offset < title.duration_seconds
        query = common | {"break": ad_break.id, "device": tag.device}
        if tag.region:
            query["region"] = tag.region
        breaks.append(
            (
                documents.vmap_time_offset(offset, title.duration_seconds),
                documents.break_id(offset, title.duration_seconds, mid_rolls),
                ad_break.id,
                # [CACHEBUSTING]: the VAST macro players replace with a random number.
                base + urlencode(query) + "&cb=[CACHEBUSTING]",
            )
        )
    return _xml(documents.vmap(breaks))


@require_GET
def vast_error(request: HttpRequest) -> HttpResponse:
    """Where players report a VAST error (the `<Error>` URLs): logged, answered 204."""
    logger.info(
        "VAST error %s (%s) from player %r",
        request.GET.get("code", "")[:8],
        request.GET.get("reason", "")[:40],
        request.GET.get("player", "")[:64],
    )
    return HttpResponse(status=204)


@require_GET
def vast_try(request: HttpRequest) -> HttpResponse:
    """An integrator's page: the Dailymotion VAST client, untouched, plays a title's breaks
    from this server's VMAP and VAST tags and fires every tracker (templates/ads/vast_try.html)."""
    return render(
        request,
        "ads/vast_try.html",
        {"parameters": params.PARAMETERS, "devices": sorted(params.DEVICES)},
    )
