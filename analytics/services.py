"""Rollups: the event table aggregated per account-local day, in the database.

`rollup_day(day=D)` recomputes day D for the accounts from the raw events, all in SQL: three
passes over the day's events fill temporary tables, the rows of both rollup tables are derived
from those, then merged into the stored rows (changed rows updated, new ones inserted, the ones
whose events are gone deleted), so ids stay stable and unchanged rows are not rewritten. Running
it twice gives identical rows, ids included.

What keeps it fast on tens of millions of events a day (bench/rollups.py):
- one pass for all accounts: each account's local day is a row of a VALUES list joined to the
  events, not a query per time zone;
- sums at two grains, (line item, creative, device, region, local hour) and (line item, title):
  the delivery, region, device and hour rows are summed from the first, the title and genre rows
  from the second;
- the hour of day in each account's time zone without time zone functions in SQL (SQLite has
  none): a window is a stretch of the local day with one UTC offset (two on a day the clocks
  change), and an event's local hour is (its epoch seconds + the window's offset) // 3600 mod 24,
  right for every zone, half-hour ones included;
- unique viewers without a COUNT(DISTINCT) over the events per breakdown: a group's unique
  viewers are its impressions less its repeats (impressions of a viewer it already counted),
  and a repeat needs a (line item, viewer) pair with two impressions or more, so the third pass
  keeps only the impressions of those pairs (few) to count the repeats from.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.utils import timezone

from ads.models import AdEvent, Advertiser, decided_before, decided_from
from analytics.models import DailyBreakdown, DailyDelivery, RetiredEventDay, RolledThrough

Type = AdEvent.Type
# The metrics counted from the events: the event type each counts (spend sums cost_micros).
COUNTED = {
    "impressions": Type.IMPRESSION,
    "clicks": Type.CLICK,
    "first_quartiles": Type.FIRST_QUARTILE,
    "midpoints": Type.MIDPOINT,
    "third_quartiles": Type.THIRD_QUARTILE,
    "completes": Type.COMPLETE,
}
SUMMED = [*COUNTED, "spend_micros"]
METRIC_FIELDS = [*SUMMED, "unique_viewers"]
# Memory of the sorts and hashes of the passes (PostgreSQL; the default 4 MB spills to disk).
WORK_MEM = "512MB"
# The first key of the advisory locks of rollups (the second is the day).
LOCK_NAMESPACE = 5_0001


class EventsRetired(Exception):
    """A day whose events were partly dropped by retention: recomputing it would count only
    what is left, so its stored rows (the history) are kept as they are."""

    def __init__(self, day: dt.date, retired_through: dt.date):
        self.day, self.retired_through = day, retired_through
        super().__init__(
            f"The events of {day} cannot be rolled up again: retention dropped the events "
            f"decided through {retired_through}, and its rollups are the history now."
        )


@dataclass(frozen=True)
class RollupResult:
    day: dt.date
    delivery_rows: int
    breakdown_rows: int


@dataclass(frozen=True)
class _Grain:
    """How one kind of rollup row groups: by `key` over the alias `e` of `source` (with
    `joins`; `regroup=False` when `source` is at that grain already), then the row's value and
    label from the grouped `s.dim_key` (with `label_joins`)."""

    source: str
    key: str
    joins: str = ""
    label_joins: str = ""
    value: str = "s.dim_key"
    label: str = "COALESCE(NULLIF(s.dim_key, ''), '(none)')"
    regroup: bool = True


DELIVERY = _Grain("rollup_by_creative", "e.creative_id", label="NULL")
# A title in several genres counts in each; a title without one in "(none)" (genre 0).
BREAKDOWNS = {
    DailyBreakdown.Dimension.GENRE: _Grain(
        "rollup_by_title",
        "COALESCE(tg.genre_id, 0)",
        joins="JOIN catalog_title t ON t.id = e.title_id "
        "LEFT JOIN catalog_title_genres tg ON tg.title_id = e.title_id",
        label_joins="LEFT JOIN catalog_genre g ON g.id = s.dim_key",
        value="COALESCE(g.slug, '')",
        label="COALESCE(NULLIF(g.name, ''), '(none)')",
    ),
    DailyBreakdown.Dimension.REGION: _Grain("rollup_by_creative", "e.region"),
    DailyBreakdown.Dimension.DEVICE: _Grain("rollup_by_creative", "e.device"),
    # "00" to "23": the local hour, zero-padded so that the values sort as the hours do.
    DailyBreakdown.Dimension.HOUR: _Grain(
        "rollup_by_creative",
        "e.hour",
        value="SUBSTR(CAST(100 + s.dim_key AS TEXT), 2)",
        label="SUBSTR(CAST(100 + s.dim_key AS TEXT), 2) || ':00'",
    ),
    DailyBreakdown.Dimension.TITLE: _Grain(
        "rollup_by_title",
        "e.title_id",
        label_joins="JOIN catalog_title t ON t.id = s.dim_key",
        value="CAST(s.dim_key AS TEXT)",
        label="COALESCE(NULLIF(t.name, ''), '(none)')",
        regroup=False,
    ),
}
TEMPORARY_TABLES = [
    "rollup_by_creative",
    "rollup_by_title",
    "rollup_repeats",
    "rollup_delivery",
    "rollup_breakdown",
]


def local_day_range(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants where `day` begins and ends in time zone `tz`."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def local_day_windows(day: dt.date, tz: ZoneInfo) -> list[tuple[dt.datetime, dt.datetime, int]]:
    """`day` in time zone `tz` as stretches of one UTC offset: (UTC start, UTC end, offset in
    seconds), one stretch, or two on a day the clocks change (found to the second)."""
    start, end = local_day_range(day, tz)

    def offset(instant: dt.datetime) -> int:
        local = instant.astimezone(tz)
        return int(local.utcoffset().total_seconds())  # type: ignore[union-attr]  # aware

    first, last = offset(start), offset(end - dt.timedelta(seconds=1))
    if first == last:
        return [(start, end, first)]
    # Seconds into the day: offset(low) is the first offset, offset(high) the last.
    low, high = 0, int((end - start).total_seconds()) - 1
    while high - low > 1:
        middle = (low + high) // 2
        if offset(start + dt.timedelta(seconds=middle)) == first:
            low = middle
        else:
            high = middle
    change = start + dt.timedelta(seconds=high)
    return [(start, change, first), (change, end, last)]


def rollup_day(*, day: dt.date, advertisers: Iterable[Advertiser] | None = None) -> RollupResult:
    """Recompute `day` (each account's local day) for `advertisers` (default: all). Raises
    EventsRetired, changing nothing, when retention dropped any of the events it would read."""
    accounts = advertisers if advertisers is not None else Advertiser.objects.all()
    windows = [
        (advertiser.pk, *window)
        for advertiser in accounts
        for window in local_day_windows(day, advertiser.tzinfo)
    ]
    if not windows:
        return RollupResult(day, 0, 0)
    ops = connection.ops
    first = min(start for _, start, _, _ in windows)
    last = max(end for _, _, end, _ in windows)
    # Retention drops the oldest days first: a retired day on or after the first day of
    # decisions this day reads means some of its events are gone.
    retired = RetiredEventDay.objects.filter(day__gte=decided_from(first).date()).order_by("-day")
    if retired_through := retired.values_list("day", flat=True).first():
        raise EventsRetired(day, retired_through)
    events, params = _events_of_day(
        [
            (pk, ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end), offset)
            for pk, start, end, offset in windows
        ],
        [ops.adapt_datetimefield_value(instant) for instant in (first, last)],
        [
            ops.adapt_datetimefield_value(decided_from(first)),
            ops.adapt_datetimefield_value(decided_before(last)),
        ],
    )
    advertiser_ids = sorted({pk for pk, _, _, _ in windows})
    day_value = ops.adapt_datefield_value(day)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One rollup of a day at a time (the nightly task, the intraday one, the command):
            # a second waits for the first's commit, then finds its rows and rewrites none.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, day.toordinal()]
            )
            cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            # The rows can be rebuilt from the events: not waiting for the commit to reach the
            # disk risks nothing and saves seconds when a day's rows are (re)written.
            cursor.execute("SET LOCAL synchronous_commit = off")
            # Compiling these few large statements took longer (0.9 s each) than it saved.
            cursor.execute("SET LOCAL jit = off")
        # Taken before the events are read (and after waiting for another rollup of the day):
        # an event stored after it may be in the rows (the reads see what is committed when
        # they run) but not in reach, an error of the milliseconds between the two, never of
        # the minutes between rollups.
        rolled_at = timezone.now()
        for table in TEMPORARY_TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        _aggregate_events(cursor, events, params)
        delivery_rows = _merge(
            cursor, DailyDelivery, "rollup_delivery", _delivery_sql(), advertiser_ids, day_value
        )
        breakdown_rows = _merge(
            cursor, DailyBreakdown, "rollup_breakdown", _breakdown_sql(), advertiser_ids, day_value
        )
        for table in TEMPORARY_TABLES:
            cursor.execute(f"DROP TABLE {table}")
        RolledThrough.objects.bulk_create(
            [
                RolledThrough(advertiser_id=pk, day=day, rolled_at=rolled_at)
                for pk in advertiser_ids
            ],
            update_conflicts=True,
            unique_fields=["advertiser", "day"],
            update_fields=["rolled_at"],
        )
    return RollupResult(day, delivery_rows, breakdown_rows)


def _events_of_day(
    windows: list[tuple], occurred: list[object], decided: list[object]
) -> tuple[str, list]:
    """FROM … WHERE of the events of each account's day, as SQL (alias `e`) and parameters;
    the window's UTC offset is `w.column4`. The bounds on `decided_at` (the partition key on
    PostgreSQL), which follow from those on `occurred_at`, let PostgreSQL read the day's few
    partitions only."""
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(windows))
    sql = (
        f"FROM ads_adevent e JOIN (VALUES {rows}) AS w ON w.column1 = e.advertiser_id "
        "AND e.occurred_at >= w.column2 AND e.occurred_at < w.column3 "
        "WHERE e.occurred_at >= %s AND e.occurred_at < %s "
        "AND e.decided_at >= %s AND e.decided_at < %s"
    )
    return sql, [value for window in windows for value in window] + occurred + decided


def _sums(alias: str, *, from_events: bool) -> str:
    """The summed metrics, from the events or from a table of sums."""
    if not from_events:
        return ", ".join(f"CAST(SUM({alias}.{name}) AS BIGINT) AS {name}" for name in SUMMED)
    counts = [
        f"COUNT(*) FILTER (WHERE {alias}.event_type = '{event_type}') AS {name}"
        for name, event_type in COUNTED.items()
    ]
    return ", ".join([*counts, f"SUM({alias}.cost_micros) AS spend_micros"])


def _local_hour() -> str:
    """The hour of event `e` in its account's time zone, 0 to 23: its UTC epoch seconds plus
    its window's offset (`w.column4`), in whole hours, modulo 24. PostgreSQL's EXTRACT has
    fractions of a second (so FLOOR, where a CAST would round); SQLite's %s has none."""
    if connection.vendor == "postgresql":
        return (
            "CAST(FLOOR((EXTRACT(EPOCH FROM e.occurred_at) + w.column4) / 3600) AS INTEGER) %% 24"
        )
    return "((CAST(strftime('%%s', e.occurred_at) AS INTEGER) + w.column4) / 3600) %% 24"


def _aggregate_events(cursor, events: str, params: list) -> None:
    """The three passes over the events."""
    hour = _local_hour()
    for table, grain in (
        ("rollup_by_creative", ["e.creative_id", "e.device", "e.region", hour]),
        ("rollup_by_title", ["e.title_id"]),
    ):
        keys = ["e.advertiser_id", "e.line_item_id", *grain]
        selected = ", ".join(key if key != hour else f"{hour} AS hour" for key in keys)
        cursor.execute(
            f"CREATE TEMPORARY TABLE {table} AS SELECT {selected}, "
            f"{_sums('e', from_events=True)} {events} GROUP BY {', '.join(keys)}",
            params,
        )
    # The impressions of the (line item, viewer) pairs with two or more of them: every repeat
    # is one of these (a superset is fine: a group counts a viewer's repeats, zero if one).
    columns = "advertiser_id, line_item_id, creative_id, viewer_id, title_id, device, region"
    prefixed = ", ".join(f"e.{column}" for column in columns.split(", "))
    cursor.execute(
        f"CREATE TEMPORARY TABLE rollup_repeats AS SELECT {columns}, hour FROM ("
        f"SELECT {prefixed}, {hour} AS hour, "
        "COUNT(*) OVER (PARTITION BY e.line_item_id, e.viewer_id) AS seen "
        f"{events} AND e.event_type = '{Type.IMPRESSION}') AS impressions WHERE seen > 1",
        params,
    )
    _analyze(cursor, "rollup_by_creative", "rollup_by_title", "rollup_repeats")


def _analyze(cursor, *tables: str) -> None:
    """Statistics for the planner (PostgreSQL never gathers them on temporary tables)."""
    if connection.vendor == "postgresql":
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


def _grain_sql(grain: _Grain) -> str:
    """SELECT of one kind of rows: advertiser_id, campaign_id, line_item_id, value, label and
    the metrics, unique viewers being impressions less repeats."""
    group = f"e.advertiser_id, e.line_item_id, {grain.key}"
    if grain.regroup:
        sums = f"{group} AS dim_key, {_sums('e', from_events=False)}"
        summed = f"(SELECT {sums} FROM {grain.source} e {grain.joins} GROUP BY {group})"
    else:
        summed = f"(SELECT {group} AS dim_key, {_metric_list('e.', SUMMED)} FROM {grain.source} e)"
    # Hashable (no COUNT(DISTINCT)): each viewer's impressions in the group, less one.
    seen = (
        f"SELECT {group} AS dim_key, COUNT(*) AS seen FROM rollup_repeats e {grain.joins} "
        f"GROUP BY {group}, e.viewer_id HAVING COUNT(*) > 1"
    )
    repeats = (
        "SELECT advertiser_id, line_item_id, dim_key, SUM(seen - 1) AS repeats "
        f"FROM ({seen}) AS seen GROUP BY advertiser_id, line_item_id, dim_key"
    )
    return (
        "SELECT s.advertiser_id, li.campaign_id, s.line_item_id, "
        f"{grain.value} AS value, {grain.label} AS label, {_metric_list('s.', SUMMED)}, "
        "s.impressions - COALESCE(r.repeats, 0) AS unique_viewers "
        f"FROM {summed} AS s JOIN ads_lineitem li ON li.id = s.line_item_id "
        f"{grain.label_joins} LEFT JOIN ({repeats}) AS r "
        "ON r.advertiser_id = s.advertiser_id AND r.line_item_id = s.line_item_id "
        "AND r.dim_key = s.dim_key"
    )


def _delivery_sql() -> str:
    return (
        "SELECT advertiser_id, campaign_id, line_item_id, value AS creative_id, "
        f"{_metric_list()} FROM ({_grain_sql(DELIVERY)}) AS grain"
    )


def _breakdown_sql() -> str:
    return " UNION ALL ".join(
        f"SELECT advertiser_id, campaign_id, line_item_id, '{dimension}' AS dimension, value, "
        f"label, {_metric_list()} FROM ({_grain_sql(grain)}) AS grain"
        for dimension, grain in BREAKDOWNS.items()
    )


def _metric_list(alias: str = "", names: list[str] = METRIC_FIELDS) -> str:
    return ", ".join(f"{alias}{name}" for name in names)


def _merge(cursor, model, staged: str, select: str, advertiser_ids: list[int], day) -> int:
    """Stores the rows of `select` as `model`'s rows of `day` for `advertiser_ids`: one join
    finds each row's stored twin, then the stored rows without one are deleted (when a count
    says there are any), only the rows that changed updated and the new ones inserted (in the
    unique index's order).
    Returns the number of rows."""
    table = model._meta.db_table
    grain = model._meta.constraints[0].fields  # the unique constraint: the row's identity
    key = [model._meta.get_field(name).column for name in grain if name != "day"]
    values = [
        field.column
        for field in model._meta.concrete_fields
        if not field.primary_key and field.name not in grain
    ]
    columns = [*key, *values]
    matches = " AND ".join(f"t.{column} = s.{column}" for column in key)
    differs = " OR ".join(f"t.{column} <> s.{column}" for column in values)
    cursor.execute(
        f"CREATE TEMPORARY TABLE {staged} AS SELECT s.*, t.id AS stored_id, "
        f"CASE WHEN {differs} THEN 1 ELSE 0 END AS changed FROM ({select}) AS s "
        f"LEFT JOIN {table} t ON t.day = %s AND {matches}",
        [day],
    )
    _analyze(cursor, staged)
    placeholders = ", ".join(["%s"] * len(advertiser_ids))
    stored = f"FROM {table} WHERE day = %s AND advertiser_id IN ({placeholders})"
    cursor.execute(
        f"SELECT (SELECT COUNT(*) {stored}), (SELECT COUNT(stored_id) FROM {staged})",
        [day, *advertiser_ids],
    )
    stored_rows, matched_rows = cursor.fetchone()
    if stored_rows > matched_rows:  # some stored rows have no events any more
        cursor.execute(
            f"DELETE {stored} AND id NOT IN "
            f"(SELECT stored_id FROM {staged} WHERE stored_id IS NOT NULL)",
            [day, *advertiser_ids],
        )
    cursor.execute(
        f"UPDATE {table} SET "
        + ", ".join(f"{column} = s.{column}" for column in values)
        + f" FROM {staged} AS s WHERE {table}.id = s.stored_id AND s.changed = 1"
    )
    cursor.execute(
        f"INSERT INTO {table} (day, {', '.join(columns)}) "
        f"SELECT %s, {_metric_list('s.', columns)} FROM {staged} AS s "
        f"WHERE s.stored_id IS NULL ORDER BY {_metric_list('s.', key)}",
        [day],
    )
    cursor.execute(f"SELECT COUNT(*) FROM {staged}")
    return cursor.fetchone()[0]


def accounts_by_local_date(*, at: dt.datetime) -> dict[dt.date, list[Advertiser]]:
    """Accounts grouped by the date it is in their time zone at `at`."""
    groups: dict[dt.date, list[Advertiser]] = defaultdict(list)
    for advertiser in Advertiser.objects.filter(is_active=True):
        groups[at.astimezone(advertiser.tzinfo).date()].append(advertiser)
    return groups


def rollup_today(*, at: dt.datetime) -> list[RollupResult]:
    """The intraday refresh: each account's local today, as far as it has gone."""
    return [
        rollup_day(day=day, advertisers=accounts)
        for day, accounts in accounts_by_local_date(at=at).items()
    ]


def rollup_last_night(*, at: dt.datetime) -> list[RollupResult]:
    """The nightly rebuild: yesterday, for the accounts where it is now between 01:00 and
    01:59 (run hourly, each account's night comes once a day, when its yesterday is final)."""
    results = []
    for day, accounts in accounts_by_local_date(at=at).items():
        due = [a for a in accounts if at.astimezone(a.tzinfo).hour == 1]
        if due:
            results.append(rollup_day(day=day - dt.timedelta(days=1), advertisers=due))
    return results
