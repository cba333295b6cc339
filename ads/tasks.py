"""Celery tasks of ads: thin wrappers that take strings and call a service."""

import datetime as dt

from celery import shared_task
from django.utils import timezone

from ads.learning.training import ctr_drift_measure, ctr_model_retrain


@shared_task(time_limit=60 * 60, soft_time_limit=55 * 60)
def retrain_ctr_model_task(window_end_iso: str | None = None, days: int = 14) -> int | None:
    """Retrain the CTR model on the `days` before `window_end_iso` (default: now). Re-running
    a night makes an equivalent candidate, never a second champion (ml.services)."""
    window_end = dt.datetime.fromisoformat(window_end_iso) if window_end_iso else None
    version = ctr_model_retrain(window_end=window_end, days=days)
    return version.pk if version else None


@shared_task(time_limit=30 * 60, soft_time_limit=25 * 60)
def measure_ctr_drift_task(day_iso: str | None = None) -> float | None:
    """The CTR champion's score drift on a day (default: yesterday, UTC)."""
    day = (
        dt.date.fromisoformat(day_iso)
        if day_iso
        else timezone.now().astimezone(dt.UTC).date() - dt.timedelta(days=1)
    )
    measurement = ctr_drift_measure(day=day)
    return measurement.psi if measurement else None
