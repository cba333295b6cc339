"""Celery tasks of ads: thin wrappers that take strings and call a service."""

import datetime as dt
from typing import Any

from celery import shared_task
from django.utils import timezone

from ads.services import (
    ctr_drift_measure,
    ctr_model_train,
    event_partitions_make_ahead,
    event_totals_advance,
)
from ml import selectors as ml_selectors
from ml.services import TrainingError, training_window_end

RETRAIN_SOFT_TIME_LIMIT = 55 * 60
RETRAIN_TIME_LIMIT = 60 * 60


@shared_task(
    name="ads.tasks.retrain_ctr_model_task",
    soft_time_limit=RETRAIN_SOFT_TIME_LIMIT,
    time_limit=RETRAIN_TIME_LIMIT,
)
def retrain_ctr_model_task(
    window_end_iso: str | None = None, window_days: int | None = None
) -> dict[str, Any]:
    """Nightly: train the CTR model on the window ending at `window_end_iso` (ISO 8601; a
    time without a zone is UTC; default: now) and register it. Re-running a night makes an
    equivalent candidate, never a second champion (ml.services). A window with too little
    data is a recorded failed run, returned here, not raised; any other error (also
    recorded) propagates, e.g. the soft time limit."""
    window = {"window_days": window_days} if window_days else {}
    try:
        version = ctr_model_train(window_end=training_window_end(window_end_iso), **window)
    except TrainingError as error:
        return {"outcome": "failed", "error": str(error)}
    return ml_selectors.training_outcome(version)


@shared_task(name="ads.tasks.measure_ctr_drift_task", time_limit=30 * 60, soft_time_limit=25 * 60)
def measure_ctr_drift_task(day_iso: str | None = None) -> float | None:
    """The CTR champion's score drift on a day (default: yesterday, UTC)."""
    day = (
        dt.date.fromisoformat(day_iso)
        if day_iso
        else timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)
    )
    measurement = ctr_drift_measure(day=day)
    return measurement.psi if measurement else None


@shared_task(
    name="ads.tasks.event_partitions_make_ahead_task", time_limit=5 * 60, soft_time_limit=4 * 60
)
def event_partitions_make_ahead_task() -> list[str]:
    """Hourly: the event table's partitions from yesterday to EVENT_PARTITIONS_AHEAD_DAYS
    ahead (PostgreSQL); the days it made."""
    return [day.isoformat() for day in event_partitions_make_ahead(at=timezone.now())]


@shared_task(name="ads.tasks.event_totals_advance_task", time_limit=10 * 60, soft_time_limit=9 * 60)
def event_totals_advance_task() -> int | None:
    """Every quarter hour: the event totals moved up to the events stored by the last run (what
    a counter rebuild reads instead of the whole event table); the id they reach."""
    return event_totals_advance(at=timezone.now())
