"""Event totals: the event table summed per creative and type (ever, and per day), up to an
event id, so that a counter rebuild reads these rows plus the tail of events stored after them
instead of the whole table (`ads.services.rebuild.counters_rebuild`).

Why here and not analytics' rollups: ads may not import analytics (DESIGN.md's layers), and the
rollups are per account-local day of *occurrence*, recomputed by the intraday task: an event
stored after its day's last rollup (it may arrive up to TOKEN_TTL after its decision) is missing
from them, and nothing says which rows are final.

Why an id and not a time: events get their ids from one sequence as they are stored, so "every
event with an id up to N" is a set that no later write changes, once every transaction that
took an id up to N has ended. The beat task notes the largest id stored (`seen_through`) and,
on a later run at least SEAL_MARGIN after that, sums the events up to it: a batch commits well
within SEAL_MARGIN of taking its ids (requests time out before), so by then none of them can
still appear. The tail a rebuild reads is `id > covered_through`: what was stored since the
previous run but one (about half an hour at the beat's quarter hour, however late each event's
decision was), found through each partition's primary key index. A loader of history needs no
care: its events get new ids, land in the tail and are summed by the next runs.

Exactness: totals + tail equal the full scan as long as no transaction held an event id for
longer than SEAL_MARGIN. Differences by design: the totals keep the events of partitions that
retention dropped (a lifetime budget must not forget them; the full scan does); a day row keeps
the local day of the account's time zone when it was summed (an account that changes zone sees
its last days by the old one).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from ads.models import AdEvent, Advertiser, EventDayTotal, EventTotal, EventTotalMark

# A batch commits within this long of taking its event ids (requests time out well before).
SEAL_MARGIN = timedelta(minutes=10)
# Days of day rows kept (a rebuild reads the last two).
DAYS_KEPT = 7
LOCK_KEY = 5_0002  # the advisory lock of the beat task (PostgreSQL)


class Grouped(NamedTuple):
    advertiser_id: int
    line_item_id: int
    creative_id: int
    event_type: str
    local_day: date
    utc_day: date
    events: int
    cost_micros: int


def events_grouped(after_id: int | None, through_id: int | None) -> list[Grouped]:
    """The events with `after_id < id <= through_id` (None: unbounded), counted and summed per
    creative, type, local day (the account's zone) and UTC day of occurrence. One pass on
    PostgreSQL (an id range is an index range in each partition); one grouped query per time
    zone on SQLite."""
    if connection.vendor == "postgresql":
        where, params = [], []
        if after_id is not None:
            where.append("e.id > %s")
            params.append(after_id)
        if through_id is not None:
            where.append("e.id <= %s")
            params.append(through_id)
        sql = (
            "SELECT e.advertiser_id, e.line_item_id, e.creative_id, e.event_type, "
            "(e.occurred_at AT TIME ZONE a.timezone)::date, "
            "(e.occurred_at AT TIME ZONE 'UTC')::date, COUNT(*), "
            # SUM of a bigint is a numeric: Python would get a Decimal, which Redis refuses.
            "COALESCE(SUM(e.cost_micros), 0)::bigint "
            "FROM ads_adevent e JOIN ads_advertiser a ON a.id = e.advertiser_id "
            + ("WHERE " + " AND ".join(where) + " " if where else "")
            + "GROUP BY 1, 2, 3, 4, 5, 6"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [Grouped(*row) for row in cursor.fetchall()]
    events = AdEvent.objects.all()
    if after_id is not None:
        events = events.filter(id__gt=after_id)
    if through_id is not None:
        events = events.filter(id__lte=through_id)
    rows = []
    for zone in sorted(set(Advertiser.objects.values_list("timezone", flat=True))):
        grouped = (
            events.filter(advertiser__timezone=zone)
            .annotate(
                local_day=TruncDate("occurred_at", tzinfo=ZoneInfo(zone)),
                utc_day=TruncDate("occurred_at", tzinfo=UTC),
            )
            .values_list(
                "advertiser", "line_item", "creative", "event_type", "local_day", "utc_day"
            )
            .annotate(events=Count("id"), cost=Sum("cost_micros"))
        )
        rows += [
            Grouped(a, li, c, kind, local, utc, events, cost or 0)
            for a, li, c, kind, local, utc, events, cost in grouped
        ]
    return rows


def event_totals_advance(*, at: datetime | None = None) -> int | None:
    """Add the events up to the id noted by an earlier run at least SEAL_MARGIN before `at`
    to the totals (the first such run sums the whole table up to it), drop day rows older than
    DAYS_KEPT, and note the largest id stored now for a later run (once the last note is
    summed). Returns the id the totals reach (None until a note was old enough to be summed).
    One run at a time (an advisory lock on PostgreSQL); the sums and the mark move in one
    transaction."""
    now = at or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        mark = EventTotalMark.objects.select_for_update().first()
        if mark is None:
            mark = EventTotalMark(seen_through=0, seen_at=now)
        elif mark.seen_through != mark.covered_through and now - mark.seen_at >= SEAL_MARGIN:
            _add(events_grouped(mark.covered_through, mark.seen_through))
            mark.covered_through = mark.seen_through
            mark.days_from = max(mark.days_from or date.min, now.date() - timedelta(DAYS_KEPT))
            # Rows of UTC days before days_from - 1 hold no local day from days_from on.
            EventDayTotal.objects.filter(utc_day__lt=mark.days_from - timedelta(days=1)).delete()
        if mark.seen_through == mark.covered_through or mark.pk is None:
            mark.seen_through = AdEvent.objects.aggregate(last=Max("id"))["last"] or 0
            mark.seen_at = now
        mark.save()
    return mark.covered_through


def _add(rows: Iterable[Grouped]) -> None:
    lifetime: dict[tuple[int, str], list[int]] = {}
    days: dict[tuple[int, str, date, date], list[int]] = {}
    line_items: dict[int, tuple[int, int]] = {}
    for row in rows:
        line_items[row.creative_id] = (row.advertiser_id, row.line_item_id)
        total = lifetime.setdefault((row.creative_id, row.event_type), [0, 0])
        total[0] += row.events
        total[1] += row.cost_micros
        day = days.setdefault((row.creative_id, row.event_type, row.local_day, row.utc_day), [0, 0])
        day[0] += row.events
        day[1] += row.cost_micros
    if not lifetime:
        return
    for existing in EventTotal.objects.filter(creative__in={c for c, _ in lifetime}):
        summed = lifetime.get((existing.creative_id, existing.event_type))
        if summed is not None:
            summed[0] += existing.events
            summed[1] += existing.cost_micros
    utc_days = {utc_day for _, _, _, utc_day in days}
    for existing_day in EventDayTotal.objects.filter(utc_day__in=utc_days):
        key = (
            existing_day.creative_id,
            existing_day.event_type,
            existing_day.local_day,
            existing_day.utc_day,
        )
        if key in days:
            days[key][0] += existing_day.events
            days[key][1] += existing_day.cost_micros
    EventTotal.objects.bulk_create(
        [
            EventTotal(
                creative_id=creative_id,
                line_item_id=line_items[creative_id][1],
                event_type=event_type,
                events=events,
                cost_micros=cost,
            )
            for (creative_id, event_type), (events, cost) in lifetime.items()
        ],
        update_conflicts=True,
        unique_fields=["creative", "event_type"],
        update_fields=["events", "cost_micros"],
        batch_size=5_000,
    )
    EventDayTotal.objects.bulk_create(
        [
            EventDayTotal(
                advertiser_id=line_items[creative_id][0],
                line_item_id=line_items[creative_id][1],
                creative_id=creative_id,
                event_type=event_type,
                local_day=local_day,
                utc_day=utc_day,
                events=events,
                cost_micros=cost,
            )
            for (creative_id, event_type, local_day, utc_day), (events, cost) in days.items()
        ],
        update_conflicts=True,
        unique_fields=["creative", "event_type", "local_day", "utc_day"],
        update_fields=["events", "cost_micros"],
        batch_size=5_000,
    )


class TotalsRead(NamedTuple):
    """What a rebuild reads instead of the whole table: the totals' rows (lifetime, and the
    day rows from `first_day`) and the tail's grouped events."""

    lifetime: list[tuple[int, int, str, int, int]]  # line item, creative, type, events, cost
    days: list[Grouped]
    tail: list[Grouped]


def totals_read(*, since: datetime) -> TotalsRead | None:
    """The totals and the tail for a rebuild whose day counters start after `since`; None when
    there are no totals or their day rows do not reach back that far (the caller scans)."""
    mark = EventTotalMark.objects.first()
    if mark is None or mark.covered_through is None or mark.days_from is None:
        return None
    if since.astimezone(UTC).date() - timedelta(days=1) < mark.days_from:
        return None
    first_day = since.astimezone(UTC).date() - timedelta(days=1)
    lifetime = list(
        EventTotal.objects.values_list(
            "line_item", "creative", "event_type", "events", "cost_micros"
        )
    )
    days = [
        Grouped(*row)
        for row in EventDayTotal.objects.filter(local_day__gte=first_day).values_list(
            "advertiser",
            "line_item",
            "creative",
            "event_type",
            "local_day",
            "utc_day",
            "events",
            "cost_micros",
        )
    ]
    return TotalsRead(lifetime, days, events_grouped(mark.covered_through, None))
