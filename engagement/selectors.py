"""Reads of viewing activity (platform data: staff only, never per advertiser)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Avg, Count, ExpressionWrapper, F, FloatField, Q
from django.utils import timezone

from engagement.learning.live_features import Playback
from engagement.live import live_session_row, session_events
from engagement.models import ViewingSession

ACTIVE_WITHIN = dt.timedelta(hours=4)


def viewing_activity(*, at: dt.datetime | None = None) -> dict:
    """Sessions open now (started in the last four hours, not ended) and their average live
    engagement score, and for today (UTC): sessions, the share completed, and the average
    engagement (watched share of the title)."""
    at = at or timezone.now()
    midnight = at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    live = _open_sessions(at).aggregate(count=Count("id"), score=Avg("engagement_score"))
    today = ViewingSession.objects.filter(started_at__gte=midnight, started_at__lte=at).aggregate(
        sessions=Count("id"),
        completed=Count("id", filter=Q(completed=True)),
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
        "completion_rate": today["completed"] / sessions if sessions else None,
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
