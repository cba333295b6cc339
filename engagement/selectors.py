"""Reads of viewing activity (platform data: staff only, never per advertiser)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Avg, Count, ExpressionWrapper, F, FloatField, Q
from django.utils import timezone

from engagement.models import ViewingSession

ACTIVE_WITHIN = dt.timedelta(hours=4)


def viewing_activity(*, at: dt.datetime | None = None) -> dict:
    """Sessions open now (started in the last four hours, not ended), and for today (UTC):
    sessions, the share completed, and the average engagement (watched share of the title)."""
    at = at or timezone.now()
    midnight = at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    active = ViewingSession.objects.filter(
        started_at__gte=at - ACTIVE_WITHIN, started_at__lte=at, ended_at__isnull=True
    ).count()
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
        "active_sessions": active,
        "sessions_today": sessions,
        "completion_rate": today["completed"] / sessions if sessions else None,
        "average_engagement": today["engagement"],
    }
