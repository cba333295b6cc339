"""The engagement model's inputs from the database, as the DataFrames `EngagementFeatures`
takes: interaction rows (ratings and finished viewing sessions) and the attributes of viewers
and titles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from django.db.models import BooleanField, Count, ExpressionWrapper, Q

from catalog import selectors as catalog_selectors
from catalog.models import Title, Viewer
from engagement.learning import history
from engagement.learning.labels import ENGAGED_RATING, session_engaged
from engagement.models import Rating, ViewingSession

VIEWER_FIELDS = ("age_band", "gender", "region", "device", "is_kids")
ROW_COLUMNS = ("viewer", "title", "label", "score", "session", "at", "known_at")


def interaction_rows(*, window_start: datetime | None, window_end: datetime) -> pd.DataFrame:
    """Every rating made, and every session that ended, before `window_end` (and from
    `window_start`), ordered by time: ``viewer``, ``title`` (ids), ``label`` (engaged),
    ``score`` (graded: (rating − 1) / 4, or the share of the title watched), ``session``
    (1 for a session), ``at`` (the rating's time, the session's start), ``known_at`` (when
    the label was known: the rating's time, the session's end)."""
    ratings = Rating.objects.filter(rated_at__lt=window_end)
    sessions = ViewingSession.objects.filter(ended_at__isnull=False, ended_at__lt=window_end)
    if window_start is not None:
        ratings = ratings.filter(rated_at__gte=window_start)
        sessions = sessions.filter(started_at__gte=window_start)
    rating_rows = pd.DataFrame(
        ratings.order_by("rated_at", "id").values_list(
            "viewer_id", "title_id", "rating", "rated_at"
        ),
        columns=["viewer", "title", "rating", "at"],
    )
    session_rows = pd.DataFrame(
        sessions.annotate(engaged=ExpressionWrapper(session_engaged(), output_field=BooleanField()))
        .order_by("started_at", "id")
        .values_list("viewer_id", "title_id", "watched_seconds", "title__duration_seconds",
                     "engaged", "started_at", "ended_at"),
        columns=["viewer", "title", "watched", "duration", "engaged", "at", "known_at"],
    )  # fmt: skip
    frames = []
    if len(rating_rows):
        frames.append(
            pd.DataFrame(
                {
                    "viewer": rating_rows["viewer"],
                    "title": rating_rows["title"],
                    "label": (rating_rows["rating"] >= ENGAGED_RATING).astype(int),
                    "score": (rating_rows["rating"] - 1) / 4.0,
                    "session": 0,
                    "at": pd.to_datetime(rating_rows["at"], utc=True),
                    "known_at": pd.to_datetime(rating_rows["at"], utc=True),
                }
            )
        )
    if len(session_rows):
        label = session_rows["engaged"].astype(bool)
        ratio = (session_rows["watched"] / session_rows["duration"].clip(lower=1)).clip(0.0, 1.0)
        frames.append(
            pd.DataFrame(
                {
                    "viewer": session_rows["viewer"],
                    "title": session_rows["title"],
                    "label": label.astype(int),
                    "score": ratio.where(~label, 1.0),
                    "session": 1,
                    "at": pd.to_datetime(session_rows["at"], utc=True),
                    "known_at": pd.to_datetime(session_rows["known_at"], utc=True),
                }
            )
        )
    if not frames:
        return pd.DataFrame({column: [] for column in ROW_COLUMNS})
    rows = pd.concat(frames, ignore_index=True)
    # A stable order: by time, then ratings before sessions, then by viewer and title.
    return rows.sort_values(
        ["at", "session", "viewer", "title"], kind="mergesort", ignore_index=True
    )


def with_stored_history(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (``viewer``, ``title``, ``at``, in the past) with the history tallies of the
    ratings and sessions stored before each row's moment (`history.with_history`), from one
    read of every interaction before the latest of them."""
    if not len(rows):
        return rows.assign(**{column: [] for column in history.TALLY_COLUMNS})
    end = pd.to_datetime(rows["at"], utc=True).max().to_pydatetime()
    return history.with_history(rows, interaction_rows(window_start=None, window_end=end))


def served_history_tallies(
    *, viewer_id: int, title_ids: Sequence[int], at: datetime
) -> pd.DataFrame:
    """The history tallies (`history.TALLY_COLUMNS`) of `viewer_id` with each of `title_ids`
    at `at`, from the ratings made and the sessions ended before it: what
    `history.history_tallies` gives a row at `at` from the stored rows (two queries: the
    viewer's events, the titles' counts). Indexed by title id, in the given order."""
    engaged_rating = ExpressionWrapper(Q(rating__gte=ENGAGED_RATING), output_field=BooleanField())
    engaged_session = ExpressionWrapper(session_engaged(), output_field=BooleanField())
    # No ordering: a part of a UNION cannot have one (SQLite).
    ratings = Rating.objects.filter(rated_at__lt=at).order_by()
    sessions = ViewingSession.objects.filter(ended_at__isnull=False, ended_at__lt=at).order_by()
    viewer_events = (
        ratings.filter(viewer_id=viewer_id)
        .annotate(engaged=engaged_rating)
        .values_list("rated_at", "engaged")
        .union(
            sessions.filter(viewer_id=viewer_id)
            .annotate(engaged=engaged_session)
            .values_list("ended_at", "engaged"),
            all=True,
        )
    )
    title_counts = (
        ratings.filter(title_id__in=title_ids)
        .values("title_id")
        .annotate(seen=Count("id"), engaged=Count("id", filter=Q(rating__gte=ENGAGED_RATING)))
        .values_list("title_id", "seen", "engaged")
        .union(
            sessions.filter(title_id__in=title_ids)
            .values("title_id")
            .annotate(seen=Count("id"), engaged=Count("id", filter=session_engaged()))
            .values_list("title_id", "seen", "engaged"),
            all=True,
        )
    )
    known = sorted((pd.Timestamp(moment), bool(engaged)) for moment, engaged in viewer_events)
    latest = known[-history.RECENT_EVENTS :]
    seen = dict.fromkeys(title_ids, 0)
    engaged = dict.fromkeys(title_ids, 0)
    for title_id, count, positive in title_counts:
        seen[title_id] += count
        engaged[title_id] += positive
    return pd.DataFrame(
        {
            "viewer_seen": float(len(known)),
            "viewer_engaged": float(sum(label for _, label in known)),
            "viewer_recent_engaged": float(sum(label for _, label in latest)),
            "viewer_last_known": (
                history.epoch_seconds(pd.Series([known[-1][0]]))[0] if known else np.nan
            ),
            "title_seen": [float(seen[title_id]) for title_id in title_ids],
            "title_engaged": [float(engaged[title_id]) for title_id in title_ids],
        },
        index=pd.Index(list(title_ids), name="title"),
    )


def viewer_frame(viewers: Iterable[Viewer]) -> pd.DataFrame:
    """The attributes of these viewer objects (no query)."""
    viewers = list(viewers)
    return pd.DataFrame(
        {name: [getattr(viewer, name) for viewer in viewers] for name in VIEWER_FIELDS},
        index=pd.Index([viewer.pk for viewer in viewers], name="viewer"),
    )


def all_viewers_frame() -> pd.DataFrame:
    values = catalog_selectors.viewer_values(*VIEWER_FIELDS)
    return pd.DataFrame(values, columns=["viewer", *VIEWER_FIELDS]).set_index("viewer")


def title_frame(titles: Sequence[Title]) -> pd.DataFrame:
    """The attributes of these title objects: their genres from a prefetch when there is one,
    else in one query."""
    prefetched = all("genres" in getattr(t, "_prefetched_objects_cache", {}) for t in titles)
    if prefetched:
        genres = {t.pk: sorted(genre.slug for genre in t.genres.all()) for t in titles}
    else:
        genres = catalog_selectors.title_genre_slugs(title_ids=[t.pk for t in titles])
    return pd.DataFrame(
        {
            "year": [t.year for t in titles],
            "maturity_rating": [t.maturity_rating for t in titles],
            "genres": [tuple(genres.get(t.pk, ())) for t in titles],
        },
        index=pd.Index([t.pk for t in titles], name="title"),
    )


def all_titles_frame() -> pd.DataFrame:
    values = catalog_selectors.title_values("year", "maturity_rating")
    frame = pd.DataFrame(values, columns=["title", "year", "maturity_rating"]).set_index("title")
    slugs = catalog_selectors.title_genre_slugs()
    frame["genres"] = [tuple(slugs.get(pk, ())) for pk in frame.index]
    return frame
