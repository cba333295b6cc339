"""Reads of viewing activity (platform data: staff only, never per advertiser)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from django.core.cache import cache
from django.db.models import (
    Avg,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    OuterRef,
    Q,
    Subquery,
)
from django.utils import timezone

from catalog.models import Genre, MaturityRating, Title, Viewer
from engagement.learning import engagement_predict
from engagement.learning.live_features import Playback, feature_row
from engagement.live import live_scores, live_session_row, session_events
from engagement.models import AdBreakChange, BreakPlacement, PlaybackEvent, Rating, ViewingSession
from ml import selectors as ml_selectors
from ml.models import ModelKind

ACTIVE_WITHIN = dt.timedelta(hours=4)


def viewing_activity(*, at: dt.datetime | None = None) -> dict:
    """Sessions open now (started in the last four hours, not ended) and their average live
    engagement score, and for today (UTC): sessions, the average engagement (watched share of
    the title) and the completion rate. A session still open has not had its chance to finish
    its title, so the rate counts only those no longer open (ended, or left open for four
    hours): just after midnight, with every session of the day still playing, it is unknown
    (None), not 0 %."""
    at = at or timezone.now()
    midnight = at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    live = _open_sessions(at).aggregate(count=Count("id"), score=Avg("engagement_score"))
    closed = Q(ended_at__isnull=False) | Q(started_at__lt=at - ACTIVE_WITHIN)
    today = ViewingSession.objects.filter(started_at__gte=midnight, started_at__lte=at).aggregate(
        sessions=Count("id"),
        closed=Count("id", filter=closed),
        completed=Count("id", filter=closed & Q(completed=True)),
        engagement=Avg(
            ExpressionWrapper(
                F("watched_seconds") * 1.0 / F("title__duration_seconds"),
                output_field=FloatField(),
            )
        ),
    )
    sessions = today["sessions"]
    return {
        "active_sessions": live["count"],
        "average_live_score": live["score"],
        "sessions_today": sessions,
        "completion_rate": today["completed"] / today["closed"] if today["closed"] else None,
        "average_engagement": today["engagement"],
    }


def _open_sessions(at: dt.datetime):
    return ViewingSession.objects.filter(
        started_at__gte=at - ACTIVE_WITHIN, started_at__lte=at, ended_at__isnull=True
    )


LIVE_SESSIONS_SHOWN = 200


def live_sessions(
    *, at: dt.datetime | None = None, limit: int = LIVE_SESSIONS_SHOWN
) -> list[dict[str, Any]]:
    """The sessions open now (as `viewing_activity` counts them), newest first, at most
    `limit`: each as `engagement.live.live_session_row` writes it (the rows the staff socket
    sends). Three queries, whatever the number."""
    at = at or timezone.now()
    sessions = list(
        _open_sessions(at).select_related("viewer", "title").order_by("-started_at", "-id")[:limit]
    )
    events = session_events(session_ids=[session.pk for session in sessions])
    return [live_session_row(session, events[session.pk], at=at) for session in sessions]


def viewing_session_detail(
    *, session_id: int, at: dt.datetime | None = None
) -> tuple[dict[str, Any], list[Playback]]:
    """A session's row (as in `live_sessions`, at `at` or its end) and its playback events
    in time order; ViewingSession.DoesNotExist for an unknown id."""
    session = ViewingSession.objects.select_related("viewer", "title").get(pk=session_id)
    events = session_events(session_ids=[session.pk])[session.pk]
    return live_session_row(session, events, at=at or timezone.now()), events


# --- The viewer app (/watch/): profiles, the home's rows, a viewer's own sessions --------------

# The demo's household: the first adult profiles of the catalog and its first kids profile, by
# id, so every run of the demo (and every test world) shows the same ones. A profile has no
# name in the catalog; the household's are given here, in order.
WATCH_ADULT_PROFILES = 4
PROFILE_NAMES = ("Alex", "Sam", "Robin", "Jo")
KIDS_PROFILE_NAME = "Kids"
# What a kids profile may watch (the simulator's children watch the same ratings).
KIDS_MATURITY = (MaturityRating.G, MaturityRating.PG)
ROW_LENGTH = 12
CONTINUE_LENGTH = 8
# The catalog's cards and the popularity fallback change slowly; a profile's ranking changes
# with a new champion (its version is in the key) or after this long (new history).
CATALOG_SECONDS = 300
PICKS_SECONDS = 600
# Genre colours of the generated posters (MovieLens' genres; anything else is grey).
GENRE_COLOURS = {
    "action": "#b91c1c", "adventure": "#c2410c", "animation": "#ca8a04",
    "childrens": "#65a30d", "comedy": "#eab308", "crime": "#374151",
    "documentary": "#0f766e", "drama": "#7c3aed", "fantasy": "#a21caf",
    "film-noir": "#111827", "horror": "#450a0a", "musical": "#db2777",
    "mystery": "#1e3a8a", "romance": "#e11d48", "sci-fi": "#0369a1",
    "thriller": "#3f3f46", "war": "#57534e", "western": "#92400e",
}  # fmt: skip
OTHER_GENRE_COLOUR = "#475569"


@dataclass(frozen=True)
class WatchProfile:
    viewer: Viewer
    name: str

    @property
    def is_kids(self) -> bool:
        return self.viewer.is_kids


@dataclass(frozen=True)
class TitleCard:
    """What a card of the home shows of a title; `progress` and `resume_at` on "Continue
    watching" only."""

    title_id: int
    name: str
    year: int | None
    maturity_rating: str
    duration_seconds: int
    genre_slugs: tuple[str, ...]
    genre_names: tuple[str, ...]
    progress: float | None = None
    resume_at: int | None = None

    @property
    def colours(self) -> tuple[str, str]:
        """The poster's two colours: its first two genres' (one genre: the same twice)."""
        colours = [GENRE_COLOURS.get(slug, OTHER_GENRE_COLOUR) for slug in self.genre_slugs]
        colours = colours or [OTHER_GENRE_COLOUR]
        return colours[0], colours[1 if len(colours) > 1 else 0]

    @property
    def poster_style(self) -> str:
        first, second = self.colours
        return f"--c1: {first}; --c2: {second}"

    @property
    def running_time(self) -> str:
        """ "1 h 52 min", "44 min"."""
        hours, minutes = divmod(round(self.duration_seconds / 60), 60)
        return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"

    @property
    def percent_watched(self) -> int | None:
        return None if self.progress is None else round(self.progress * 100)


@dataclass(frozen=True)
class HomeRow:
    key: str
    heading: str
    cards: list[TitleCard]
    note: str = ""


def watch_profiles() -> list[WatchProfile]:
    """The profiles /watch/ offers (two queries): WATCH_ADULT_PROFILES adult profiles and one
    kids profile, the first of each by id."""
    adults = list(Viewer.objects.filter(is_kids=False).order_by("pk")[:WATCH_ADULT_PROFILES])
    kids = list(Viewer.objects.filter(is_kids=True).order_by("pk")[:1])
    profiles = [
        WatchProfile(viewer, name) for viewer, name in zip(adults, PROFILE_NAMES, strict=False)
    ]
    return profiles + [WatchProfile(viewer, KIDS_PROFILE_NAME) for viewer in kids]


def watch_profile(*, viewer_id: int) -> WatchProfile:
    """The profile of this catalog viewer: one of the household /watch/ offers, under its
    name, or any other viewer of the catalog under its external id (the demo's simulated
    audience binds its viewers through the same form); Viewer.DoesNotExist when there is no
    such viewer. A kids viewer is a kids profile either way."""
    for profile in watch_profiles():
        if profile.viewer.pk == viewer_id:
            return profile
    viewer = Viewer.objects.get(pk=viewer_id)
    return WatchProfile(viewer, viewer.external_id)


def watch_title(*, viewer: Viewer, title_id: int) -> Title:
    """A title this viewer may watch, with its ad breaks; Title.DoesNotExist otherwise (also a
    title rated above a kids profile's ratings)."""
    titles = Title.objects.prefetch_related("genres", "ad_breaks")
    if viewer.is_kids:
        titles = titles.filter(maturity_rating__in=KIDS_MATURITY)
    return titles.get(pk=title_id)


def viewer_session(*, viewer_id: int, session_id: int) -> ViewingSession:
    """This viewer's session, with its title; ViewingSession.DoesNotExist for another
    viewer's (the caller answers 404, as for one that does not exist)."""
    return ViewingSession.objects.select_related("title").get(pk=session_id, viewer_id=viewer_id)


def watch_home(*, viewer: Viewer, name: str) -> list[HomeRow]:
    """The rows of a profile's home, in order: "Continue watching", "Top picks for <name>",
    "Because you watched <title>", then one row per genre, the genres whose best titles the
    profile is likeliest to enjoy first. Titles are the profile's to watch (G and PG for a kids
    profile); every row but "Continue watching" is ranked by `watch_scores` and leaves out what
    the profile has finished or rated."""
    cards = _catalog_cards(kids=viewer.is_kids)
    scores, ranked_by_model = watch_scores(viewer=viewer, cards=cards)
    seen = _titles_seen(viewer=viewer)
    ranked = sorted(
        (card for card in cards.values() if card.title_id not in seen),
        key=lambda card: (-scores.get(card.title_id, 0.0), card.title_id),
    )
    note = "" if ranked_by_model else "Popular on Interlude: no engagement model is trained yet."
    rows = []
    continuing = continue_watching(viewer=viewer, cards=cards)
    if continuing:
        rows.append(HomeRow("continue", f"Continue watching for {name}", continuing))
    rows.append(HomeRow("picks", f"Top picks for {name}", ranked[:ROW_LENGTH], note))
    because = _because_you_watched(viewer=viewer, cards=cards, ranked=ranked)
    if because is not None:
        rows.append(because)
    genre_rows: dict[str, HomeRow] = {}
    for card in ranked:
        for slug, genre_name in zip(card.genre_slugs, card.genre_names, strict=True):
            row = genre_rows.setdefault(slug, HomeRow(f"genre-{slug}", genre_name, []))
            if len(row.cards) < ROW_LENGTH:
                row.cards.append(card)

    def appeal(row: HomeRow) -> float:
        return sum(scores.get(card.title_id, 0.0) for card in row.cards) / len(row.cards)

    rows.extend(sorted(genre_rows.values(), key=lambda row: (-appeal(row), row.heading)))
    return rows


def watch_home_stamp(*, viewer: Viewer) -> str:
    """What the home of this viewer depends on besides the catalog, in a few characters: the
    engagement champion's version and the viewer's history (sessions started and ended,
    ratings). A page cached under it is current until one of them changes (two queries)."""
    loaded = ml_selectors.champion(ModelKind.ENGAGEMENT)
    sessions = ViewingSession.objects.filter(viewer=viewer).aggregate(
        count=Count("id"), last=Max("id"), ended=Max("ended_at")
    )
    ratings = Rating.objects.filter(viewer=viewer).aggregate(count=Count("id"), last=Max("id"))
    ended = sessions["ended"].timestamp() if sessions["ended"] else 0
    return (
        f"{loaded.version_id if loaded else 0}:{sessions['count']}:{sessions['last']}:"
        f"{ended:.0f}:{ratings['count']}:{ratings['last']}"
    )


def watch_scores(*, viewer: Viewer, cards: dict[int, TitleCard]) -> tuple[dict[int, float], bool]:
    """({title id: score}, ranked by the model?) for these titles: the engagement champion's
    probabilities (`engagement_predict`, one batched call), cached per viewer and champion
    version; without a champion, each title's popularity (ratings and sessions, cached)."""
    loaded = ml_selectors.champion(ModelKind.ENGAGEMENT)
    if loaded is None:
        return _popularity(), False
    key = f"watch:picks:{loaded.version_id}:{viewer.pk}:{int(viewer.is_kids)}"
    scores = cache.get(key)
    if scores is None:
        titles = list(Title.objects.filter(pk__in=list(cards)).prefetch_related("genres"))
        scores = engagement_predict(viewer=viewer, titles=titles)
        cache.set(key, scores, PICKS_SECONDS)
    return scores, True


def continue_watching(*, viewer: Viewer, cards: dict[int, TitleCard]) -> list[TitleCard]:
    """The titles this viewer left before the end, latest first, once each, with how far they
    got (the last event's position, else the seconds watched) — not those finished since."""
    last_position = (
        PlaybackEvent.objects.filter(session=OuterRef("pk"))
        .order_by("-at", "-id")
        .values("position_seconds")[:1]
    )
    sessions = (
        ViewingSession.objects.filter(viewer=viewer)
        .annotate(position=Subquery(last_position))
        .order_by("-started_at", "-id")
        .values_list("title_id", "completed", "position", "watched_seconds")[:50]
    )
    continuing, decided = [], set()
    for title_id, completed, position, watched_seconds in sessions:
        if title_id in decided or title_id not in cards:
            continue
        decided.add(title_id)
        card = cards[title_id]
        resume_at = position if position is not None else watched_seconds
        if completed or not 0 < resume_at < card.duration_seconds:
            continue
        progress = resume_at / card.duration_seconds
        continuing.append(replace(card, progress=progress, resume_at=resume_at))
    return continuing[:CONTINUE_LENGTH]


def _because_you_watched(
    *, viewer: Viewer, cards: dict[int, TitleCard], ranked: list[TitleCard]
) -> HomeRow | None:
    """Titles sharing the most genres with the last title this viewer enjoyed (a finished
    session or a rating of 4 or more), best ranked first among equals."""
    session = (
        ViewingSession.objects.filter(viewer=viewer, completed=True)
        .order_by("-started_at")
        .values_list("title_id", "started_at")
        .first()
    )
    rating = (
        Rating.objects.filter(viewer=viewer, rating__gte=4)
        .order_by("-rated_at")
        .values_list("title_id", "rated_at")
        .first()
    )
    latest = max(
        (pair for pair in (session, rating) if pair), key=lambda pair: pair[1], default=None
    )
    if latest is None or latest[0] not in cards:
        return None
    watched = cards[latest[0]]
    genres = set(watched.genre_slugs)
    alike = [card for card in ranked if genres & set(card.genre_slugs)]
    alike.sort(key=lambda card: -len(genres & set(card.genre_slugs)))  # stable: rank kept
    return HomeRow("because", f"Because you watched {watched.name}", alike[:ROW_LENGTH])


def _titles_seen(*, viewer: Viewer) -> set[int]:
    finished = ViewingSession.objects.filter(viewer=viewer, completed=True)
    rated = Rating.objects.filter(viewer=viewer)
    return set(finished.values_list("title_id", flat=True)) | set(
        rated.values_list("title_id", flat=True)
    )


def _catalog_cards(*, kids: bool) -> dict[int, TitleCard]:
    """Every title's card (G and PG only for kids), by id; cached for CATALOG_SECONDS."""
    key = f"watch:catalog:{int(kids)}"
    cards = cache.get(key)
    if cards is None:
        titles = Title.objects.order_by("pk")
        if kids:
            titles = titles.filter(maturity_rating__in=KIDS_MATURITY)
        names = dict(Genre.objects.values_list("pk", "name"))
        slugs = dict(Genre.objects.values_list("pk", "slug"))
        genres: dict[int, list[int]] = {}
        pairs = Title.genres.through.objects.order_by("title_id", "genre__name")
        for title_id, genre_id in pairs.values_list("title_id", "genre_id"):
            genres.setdefault(title_id, []).append(genre_id)
        cards = {
            pk: TitleCard(
                title_id=pk,
                name=name,
                year=year,
                maturity_rating=maturity,
                duration_seconds=duration,
                genre_slugs=tuple(slugs[genre] for genre in genres.get(pk, ())),
                genre_names=tuple(names[genre] for genre in genres.get(pk, ())),
            )
            for pk, name, year, maturity, duration in titles.values_list(
                "pk", "name", "year", "maturity_rating", "duration_seconds"
            )
        }
        cache.set(key, cards, CATALOG_SECONDS)
    return cards


def _popularity() -> dict[int, float]:
    """Each title's ratings and viewing sessions, counted (cached for CATALOG_SECONDS)."""
    popularity = cache.get("watch:popularity")
    if popularity is None:
        popularity = {}
        for model in (Rating, ViewingSession):
            for title_id, count in (
                model.objects.values("title_id")
                .annotate(n=Count("id"))
                .values_list("title_id", "n")
            ):
                popularity[title_id] = popularity.get(title_id, 0.0) + count
        cache.set("watch:popularity", popularity, CATALOG_SECONDS)
    return popularity


# -- break placement (engagement.placement) ---------------------------------------------------


def break_placement_latest(*, title_id: int) -> BreakPlacement | None:
    """The title's latest stored analysis (None before the first night with enough data)."""
    return (
        BreakPlacement.objects.filter(title_id=title_id)
        .select_related("title")
        .order_by("-day")
        .first()
    )


def break_placement_min_sessions() -> int:
    """The sessions (started at the beginning, ended) a title needs to be analysed."""
    from engagement.placement import MIN_SESSIONS  # numpy: imported when a title page asks

    return MIN_SESSIONS


def ad_break_changes(*, title_id: int, limit: int = 20) -> list[AdBreakChange]:
    """The title's recorded ad-break changes, newest first, with who made them."""
    return list(
        AdBreakChange.objects.filter(title_id=title_id).select_related("changed_by")[:limit]
    )


def worst_breaks(*, limit: int = 5) -> list[dict[str, Any]]:
    """The breaks that lose the most viewers beyond the retention curve's baseline, from each
    title's latest analysis of the latest day analysed: title, offset, abandonment, baseline,
    excess and what the analysis recommends for it."""
    latest = BreakPlacement.objects.order_by("-day").values_list("day", flat=True).first()
    if latest is None:
        return []
    rows = []
    for placement in (
        BreakPlacement.objects.filter(day=latest, worst_excess__gt=0)
        .select_related("title")
        .order_by("-worst_excess")[:limit]
    ):
        actions = {r["break_id"]: r for r in placement.analysis["recommendations"]}
        for figures in placement.analysis["breaks"]:
            recommendation = actions.get(figures["id"], {})
            rows.append(
                {
                    "title_id": placement.title_id,
                    "title": placement.title.name,
                    "break_id": figures["id"],
                    "offset_seconds": figures["offset_seconds"],
                    "abandonment": figures["abandonment"],
                    "baseline": figures["baseline"],
                    "excess": figures["excess"],
                    "action": recommendation.get("action", "keep"),
                    "to_offset_seconds": recommendation.get("to_offset_seconds"),
                }
            )
    rows.sort(key=lambda row: -row["excess"])
    return [row for row in rows if row["excess"] > 0][:limit]


# -- the live score of a session being played elsewhere (the simulator's decisions) -----------


def engagement_prior(*, viewer_id: int, title_id: int) -> float:
    """The engagement champion's prior for viewer × title (its fallback without one)."""
    viewer = Viewer.objects.get(pk=viewer_id)
    title = Title.objects.get(pk=title_id)
    return float(engagement_predict(viewer=viewer, titles=[title])[title_id])


def live_score_of(
    *,
    events: list[tuple[str, int, dt.datetime, dict]],
    started_at: dt.datetime,
    duration_seconds: int,
    prior: float,
    at: dt.datetime,
) -> float:
    """The live score champion's score of a session from its (kind, position, at, detail)
    events so far: what `sessions_touched` stores on a stored session, for one that is not
    stored (the simulator's history asks the engine with it)."""
    row = feature_row(
        [Playback(*event) for event in events],
        started_at=started_at,
        duration_seconds=duration_seconds,
        prior=prior,
        at=at,
    )
    return float(live_scores([row], priors=[prior])[0])
