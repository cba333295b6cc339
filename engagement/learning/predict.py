"""Scoring: the champion's probability that a viewer engages with each of a batch of titles,
or, before there is a champion, each title's smoothed engagement rate."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from django.core.cache import cache
from django.db.models import Count, Q
from django.utils import timezone

from catalog.models import Title, Viewer
from engagement.learning import labels
from engagement.models import Rating, ViewingSession
from ml import selectors as ml_selectors
from ml.models import ModelKind

logger = logging.getLogger(__name__)

# The fallback: a title's engaged share among its ratings and finished sessions, pulled towards
# the population's by this many pseudo-rows (a title nobody rated gets the population's).
FALLBACK_PRIOR_ROWS = 10.0
BASE_RATE_CACHE_KEY = "engagement:base_rate"
BASE_RATE_SECONDS = 3600
NO_DATA_RATE = 0.5


def engagement_predict(
    *, viewer: Viewer, titles: Sequence[Title], at: datetime | None = None
) -> dict[int, float]:
    """{title id: probability that `viewer` engages with it} at `at` (default: now) for every
    title, in one call of the champion engagement model (no query for the viewer; one for the
    titles' genres unless they were prefetched; two for the running history, the viewer's
    and the titles' ratings and sessions known before `at`, when the champion uses it).
    Without a champion, or if it fails, `engagement_fallback`."""
    titles = list(titles)
    if not titles:
        return {}
    loaded = ml_selectors.champion(ModelKind.ENGAGEMENT)
    if loaded is None:
        return engagement_fallback(titles=titles)
    # Here, not at the top: pandas (~0.9 s of CPU to import) only with a model to feed, so a
    # process that loads the URLs (engagement.selectors imports this module) does not pay it.
    import pandas as pd

    from engagement.learning import data

    title_ids = [title.pk for title in titles]
    rows = pd.DataFrame({"viewer": viewer.pk, "title": title_ids})
    if loaded.model.uses_history:
        at = at or timezone.now()
        tallies = data.served_history_tallies(viewer_id=viewer.pk, title_ids=title_ids, at=at)
        rows = pd.concat([rows.assign(at=at), tallies.reset_index(drop=True)], axis=1)
    try:
        probabilities = loaded.model.predict(
            rows, data.viewer_frame([viewer]), data.title_frame(titles)
        )
    except Exception:
        logger.exception("Engagement model v%s failed; using the fallback.", loaded.version)
        return engagement_fallback(titles=titles)
    return {title_id: float(p) for title_id, p in zip(title_ids, probabilities, strict=True)}


def engagement_fallback(*, titles: Sequence[Title]) -> dict[int, float]:
    """{title id: (engaged + 10 × base rate) / (rows + 10)} from the title's ratings and
    finished sessions; the base rate is everyone's (cached for an hour), 0.5 with no data."""
    title_ids = [title.pk for title in titles]
    base_rate = _base_rate()
    engaged = dict.fromkeys(title_ids, 0)
    counted = dict.fromkeys(title_ids, 0)
    rating_counts = (
        Rating.objects.filter(title_id__in=title_ids)
        .values("title_id")
        .annotate(
            rows=Count("id"), engaged=Count("id", filter=Q(rating__gte=labels.ENGAGED_RATING))
        )
    )
    session_counts = (
        ViewingSession.objects.filter(title_id__in=title_ids, ended_at__isnull=False)
        .values("title_id")
        .annotate(rows=Count("id"), engaged=Count("id", filter=labels.session_engaged()))
    )
    for counts in (*rating_counts, *session_counts):
        engaged[counts["title_id"]] += counts["engaged"]
        counted[counts["title_id"]] += counts["rows"]
    return {
        title_id: (engaged[title_id] + FALLBACK_PRIOR_ROWS * base_rate)
        / (counted[title_id] + FALLBACK_PRIOR_ROWS)
        for title_id in title_ids
    }


def _base_rate() -> float:
    rate = cache.get(BASE_RATE_CACHE_KEY)
    if rate is None:
        ratings = Rating.objects.aggregate(
            rows=Count("id"), engaged=Count("id", filter=Q(rating__gte=labels.ENGAGED_RATING))
        )
        sessions = ViewingSession.objects.filter(ended_at__isnull=False).aggregate(
            rows=Count("id"), engaged=Count("id", filter=labels.session_engaged())
        )
        rows = ratings["rows"] + sessions["rows"]
        rate = (ratings["engaged"] + sessions["engaged"]) / rows if rows else NO_DATA_RATE
        cache.set(BASE_RATE_CACHE_KEY, rate, BASE_RATE_SECONDS)
    return float(rate)
