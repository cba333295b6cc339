"""Retention of raw ad events: a day's partition goes once it is older than EVENT_RETENTION_DAYS
and the rollups have counted its events (PostgreSQL; SQLite keeps every event).

The daily rollup tables are the history; the raw events behind them are dropped a partition (a
UTC day of decisions) at a time, oldest first, by detaching and dropping it, never by DELETE.
Before it goes, each (account, local day) that its events touch must count in DailyDelivery at
least the events the table still holds for it. While all of a local day's partitions are
there, that is equality: the rollup has consumed that day. When an older one is already gone,
the day was checked in full when that older one went (its partitions were all there then),
so oldest-first keeps the check exact. The first day that fails stops the retirement: it and
every later day are kept, and the accounts and days to roll up again are returned.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from ads import services as ads_services
from analytics.models import DailyDelivery
from analytics.services import COUNTED

logger = logging.getLogger(__name__)

# A local day (zones from UTC-12 to UTC+14) lies within the UTC day before it to the one after;
# its events were decided from the day before that on (TOKEN_TTL): partitions day-2 … day+2
# hold every event of the local days a partition's events touch.
MARGIN = dt.timedelta(days=2)


@dataclass
class RetentionResult:
    dropped: list[dt.date] = field(default_factory=list)
    # (account id, local day, events in the table, events in the rollup) of the first day kept
    # because its events are not all rolled up.
    not_rolled_up: list[tuple[int, dt.date, int, int]] = field(default_factory=list)


def rollup_gaps(*, day: dt.date) -> list[tuple[int, dt.date, int, int]]:
    """The (account, local day) pairs touched by the events decided on UTC `day` whose rollup
    counts fewer events than the table holds: (account id, local day, table, rollup)."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    counted = " + ".join(f"d.{name}" for name in COUNTED)
    sql = f"""
        WITH touched AS (
            SELECT DISTINCT e.advertiser_id, (e.occurred_at AT TIME ZONE a.timezone)::date AS day
            FROM ads_adevent e JOIN ads_advertiser a ON a.id = e.advertiser_id
            WHERE e.decided_at >= %(start)s AND e.decided_at < %(end)s
        ), stored AS (
            SELECT e.advertiser_id, (e.occurred_at AT TIME ZONE a.timezone)::date AS day,
                   COUNT(*) AS events
            FROM ads_adevent e JOIN ads_advertiser a ON a.id = e.advertiser_id
            WHERE e.decided_at >= %(wide_start)s AND e.decided_at < %(wide_end)s
              AND e.advertiser_id IN (SELECT advertiser_id FROM touched)
            GROUP BY 1, 2
        ), rolled AS (
            SELECT d.advertiser_id, d.day, SUM({counted}) AS events
            FROM {DailyDelivery._meta.db_table} d
            WHERE d.day >= %(first_day)s AND d.day <= %(last_day)s
            GROUP BY 1, 2
        )
        SELECT s.advertiser_id, s.day, s.events, COALESCE(r.events, 0)
        FROM stored s
        JOIN touched t ON t.advertiser_id = s.advertiser_id AND t.day = s.day
        LEFT JOIN rolled r ON r.advertiser_id = s.advertiser_id AND r.day = s.day
        WHERE COALESCE(r.events, 0) < s.events
        ORDER BY 2, 1
    """
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "start": start,
                "end": end,
                "wide_start": start - MARGIN,
                "wide_end": end + MARGIN,
                "first_day": day - dt.timedelta(days=1),
                "last_day": day + dt.timedelta(days=1),
            },
        )
        return [(pk, local_day, int(table), int(rolled)) for pk, local_day, table, rolled in cursor]


def event_retention_apply(*, at: dt.datetime) -> RetentionResult:
    """Drop the partitions of the UTC days before `at`'s date less EVENT_RETENTION_DAYS, oldest
    first, each only if the rollups have counted its events (`rollup_gaps`); the first that
    fails is kept, with every later one. Idempotent; nothing to do on SQLite."""
    result = RetentionResult()
    cutoff = at.astimezone(dt.UTC).date() - dt.timedelta(days=settings.EVENT_RETENTION_DAYS)
    for day in ads_services.event_partition_days():
        if day >= cutoff:
            break
        gaps = rollup_gaps(day=day)
        if gaps:
            result.not_rolled_up = gaps
            logger.warning(
                "Events of %s kept past retention: %d account-days not rolled up (first: "
                "account %d, %s, %d events, %d rolled up)",
                day,
                len(gaps),
                *gaps[0],
            )
            break
        ads_services.event_partition_drop(day=day)
        result.dropped.append(day)
    return result
