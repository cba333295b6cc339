"""Celery tasks of engagement: thin, taking strings and numbers, calling one service."""

from __future__ import annotations

import datetime as dt
from typing import Any

from celery import shared_task
from django.utils import timezone

from engagement.services import (
    break_placement_analyse,
    engagement_model_train,
    live_score_model_train,
)
from ml import selectors as ml_selectors
from ml.services import TrainingError, training_window_end

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
    try:
        version = engagement_model_train(
            window_end=training_window_end(window_end_iso), window_days=window_days
        )
    except TrainingError as error:
        return {"outcome": "failed", "error": str(error)}
    return ml_selectors.training_outcome(version)


@shared_task(
    name="engagement.tasks.retrain_live_score_model_task",
    soft_time_limit=RETRAIN_SOFT_TIME_LIMIT,
    time_limit=RETRAIN_TIME_LIMIT,
)
def retrain_live_score_model_task(
    window_end_iso: str | None = None, window_days: int | None = None
) -> dict[str, Any]:
    """Nightly, after the engagement model (whose champion gives the live score its prior):
    train the live engagement score on the sessions that ended in the window and register
    it. Idempotent like the engagement task; too little data is a recorded failed run,
    returned here."""
    try:
        version = live_score_model_train(
            window_end=training_window_end(window_end_iso), window_days=window_days
        )
    except TrainingError as error:
        return {"outcome": "failed", "error": str(error)}
    return ml_selectors.training_outcome(version)


@shared_task(
    name="engagement.tasks.break_placement_task",
    soft_time_limit=RETRAIN_SOFT_TIME_LIMIT,
    time_limit=RETRAIN_TIME_LIMIT,
)
def break_placement_task(day_iso: str | None = None) -> dict[str, Any]:
    """Nightly: the drop-off and break-placement analysis of every title with enough sessions
    in the two weeks before `day_iso` (default: today, UTC), stored per title and day.
    Idempotent: a second run for the same day replaces that day's rows."""
    day = dt.date.fromisoformat(day_iso) if day_iso else timezone.now().date()
    return {"day": day.isoformat(), "titles": break_placement_analyse(day=day)}
