"""Celery tasks of analytics: thin wrappers that take strings and call a service."""

import datetime as dt

from celery import shared_task
from django.utils import timezone

from analytics import services


@shared_task(time_limit=30 * 60, soft_time_limit=25 * 60)
def rollup_day_task(day_iso: str) -> int:
    """Rebuild one day for every account (by hand, or to backfill)."""
    result = services.rollup_day(day=dt.date.fromisoformat(day_iso))
    return result.delivery_rows


@shared_task(time_limit=30 * 60, soft_time_limit=25 * 60)
def rollup_last_night_task() -> int:
    return sum(result.delivery_rows for result in services.rollup_last_night(at=timezone.now()))


@shared_task(time_limit=4 * 60, soft_time_limit=3 * 60)
def rollup_today_task() -> int:
    return sum(result.delivery_rows for result in services.rollup_today(at=timezone.now()))
