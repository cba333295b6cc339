"""Retention of raw ad events: a day's partition goes once it is older than EVENT_RETENTION_DAYS
and the rollups have counted its events (PostgreSQL; SQLite keeps every event).

The daily rollup tables are the history; the raw events behind them are dropped a partition (a
UTC day of decisions) at a time, oldest first, by detaching and dropping it, never by DELETE.
Before it goes, each (account, local day) that its events touch must count in DailyDelivery at
least the events the table still holds for it. While all of a local day's partitions are
there, that is equality: the rollup has consumed that day. When an older one is already gone,
the day was checked in full when that older one went (its partitions were all there then),
so oldest-first keeps the check exact. The account-days that miss events are rolled up again
first (tracking links expire hours after their decision, so a day past retention is final);
a day that still fails stops the retirement: it and every later day are kept, and those
account-days are returned.
A retired day is recorded (RetiredEventDay), and `rollup_day` refuses any day whose events it
touched: recomputing it from what is left would delete history.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from ads import services as ads_services
from ads.models import Advertiser
from analytics.models import DailyDelivery, RetiredEventDay
from analytics.services import COUNTED, EventsRetired, rollup_day

logger = logging.getLogger(__name__)

# A local day (zones from UTC-12 to UTC+14) lies within the UTC day before it to the one after;
# its events were decided from the day before that on (TOKEN_TTL): partitions day-2 … day+2
# hold every event of the local days a partition's events touch.
MARGIN = dt.timedelta(days=2)


@dataclass
class RetentionResult:
    dropped: list[dt.date] = field(default_factory=list)
    # (account id, local day) rolled up again because the rollup had missed some events.
    rolled_up_again: list[tuple[int, dt.date]] = field(default_factory=list)
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
    first, each only if the rollups have counted its events (`rollup_gaps`). The account-days
    whose rollups miss events (a nightly rollup that did not run, or ran before the last
    tracking links came in) are rolled up again first, while every partition they read is
    still there; a day that still has gaps is kept, with every later day. Each day is recorded
    as retired (RetiredEventDay) before its partition goes, so that the rollups reading it are
    never recomputed from what is left. Idempotent; nothing to do on SQLite."""
    result = RetentionResult()
    cutoff = at.astimezone(dt.UTC).date() - dt.timedelta(days=settings.EVENT_RETENTION_DAYS)
    past = [day for day in ads_services.event_partition_days() if day < cutoff]
    result.rolled_up_again = _roll_up_again([gap for day in past for gap in rollup_gaps(day=day)])
    for day in past:
        if gaps := rollup_gaps(day=day):
            result.not_rolled_up = gaps
            logger.warning(
                "Events of %s kept past retention: %d account-days not rolled up (first: "
                "account %d, %s, %d events, %d rolled up)",
                day,
                len(gaps),
                *gaps[0],
            )
            break
        RetiredEventDay.objects.get_or_create(day=day)
        ads_services.event_partition_drop(day=day)
        result.dropped.append(day)
    return result


def _roll_up_again(gaps: list[tuple[int, dt.date, int, int]]) -> list[tuple[int, dt.date]]:
    """Rolls up the account-days of `gaps` again; those it could (not refused as retired)."""
    accounts_by_day: dict[dt.date, set[int]] = defaultdict(set)
    for advertiser_id, local_day, _, _ in gaps:
        accounts_by_day[local_day].add(advertiser_id)
    done = []
    for local_day, advertiser_ids in sorted(accounts_by_day.items()):
        try:
            rollup_day(day=local_day, advertisers=Advertiser.objects.filter(pk__in=advertiser_ids))
        except EventsRetired:
            continue  # its gap stays: the day is kept and reported
        done += [(advertiser_id, local_day) for advertiser_id in sorted(advertiser_ids)]
    return done
