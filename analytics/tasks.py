"""Celery tasks of analytics: thin wrappers that take strings and call a service."""

import datetime as dt

from celery import shared_task
from django.utils import timezone

from analytics import retention, services


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


@shared_task(time_limit=60 * 60, soft_time_limit=55 * 60)
def event_retention_task() -> dict[str, list]:
    """Daily: drop the event partitions past EVENT_RETENTION_DAYS that the rollups have counted
    (PostgreSQL); the days dropped, the account-days rolled up again for events reported
    after their rollup, and the account-days that still kept one back."""
    result = retention.event_retention_apply(at=timezone.now())
    return {
        "dropped": [day.isoformat() for day in result.dropped],
        "rolled_up_again": [
            [advertiser_id, day.isoformat()] for advertiser_id, day in result.rolled_up_again
        ],
        "not_rolled_up": [
            [advertiser_id, day.isoformat(), table, rolled]
            for advertiser_id, day, table, rolled in result.not_rolled_up
        ],
    }
