"""Celery tasks of engagement: thin, taking strings and numbers, calling one service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import shared_task

from engagement.learning import EngagementTrainingError, engagement_model_train

RETRAIN_SOFT_TIME_LIMIT = 25 * 60
RETRAIN_TIME_LIMIT = 30 * 60


@shared_task(
    name="engagement.tasks.retrain_engagement_model_task",
    soft_time_limit=RETRAIN_SOFT_TIME_LIMIT,
    time_limit=RETRAIN_TIME_LIMIT,
)
def retrain_engagement_model_task(
    window_end_iso: str | None = None, window_days: int | None = None
) -> dict[str, Any]:
    """Nightly: train the engagement model on the window ending at `window_end_iso` (ISO 8601;
    a time without a zone is UTC; default: midnight UTC today) and register it. Idempotent: a
    second run for the same window adds an equivalent candidate, never a second champion.
    A window with too little data is a recorded failed run, returned here, not raised; any
    other error (also recorded) propagates, e.g. the soft time limit."""
    window_end = None
    if window_end_iso:
        window_end = datetime.fromisoformat(window_end_iso)
        if window_end.tzinfo is None:
            window_end = window_end.replace(tzinfo=UTC)
    try:
        version = engagement_model_train(window_end=window_end, window_days=window_days)
    except EngagementTrainingError as error:
        return {"outcome": "failed", "error": str(error)}
    return {
        "outcome": "promoted" if version.status == version.Status.CHAMPION else "kept",
        "model_version_id": version.pk,
        "version": version.version,
        "decision": version.decision,
    }
