"""Celery tasks of engagement: thin, taking strings and numbers, calling one service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from engagement.services import engagement_model_train, live_score_model_train
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
