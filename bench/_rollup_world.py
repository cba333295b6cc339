"""The world of bench/rollups.py: bench/_world.py's catalog and demand (bigger: 2,000 titles with
1–3 genres, 50,000 viewers; 30 advertisers in 10 time zones, 120 campaigns, 1,000 line items,
3,000 creatives), then one day of ad events written by PostgreSQL itself: one
INSERT … SELECT … FROM generate_series(1, N).

Each event is drawn on its own (they are not chained into plays: the rollup only groups them):
- creative: skewed (some deliver far more than others), with its own line item and advertiser;
- type: impressions 60 %, first quartiles 11 %, midpoints 10 %, third quartiles 9 %, completes
  9.4 %, clicks 0.6 % (1 % of impressions);
- viewer: any of the 50,000; device the viewer's usual one 4 times in 5, region 19 in 20;
- title: skewed (popular titles draw most views), ad break one of the title's;
- occurred_at: in the advertiser's own local day, most in the evening, so that
  `rollup_day(day=DAY)` takes every event;
- cost_micros: the bid of a CPM line item per thousand on impressions, of a CPC one on clicks,
  0 otherwise, as ingestion records it;
- event_id unique, decision_id random.

The event table's secondary indexes are dropped for the load and rebuilt after it (faster than
maintaining them row by row), then VACUUM ANALYZE of the database.
"""

from __future__ import annotations

import datetime as dt
import time

import _world
from django.db import connection

from ads.services import event_partitions_make
from catalog.models import Device

_world.TITLES = 2_000
_world.VIEWERS = 50_000

# Share of events per local hour (0–23): quiet at night, the peak in prime time.
HOUR_WEIGHTS = [2, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 4, 5, 5, 4, 4, 5, 6, 8, 9, 9, 8, 6, 3]
DEVICES = Device.values


def seed() -> None:
    _world.seed()


def fill(day: dt.date, events: int) -> dict[str, float]:
    """Writes `events` ad events on `day`; returns the seconds of each step."""
    seconds: dict[str, float] = {}
    with connection.cursor() as cursor:
        began = time.perf_counter()
        _lookup_tables(cursor, day)
        # The local day, in zones from UTC-12 to UTC+14, lies within the UTC days around it.
        event_partitions_make(
            first_day=day - dt.timedelta(days=1), last_day=day + dt.timedelta(days=1)
        )
        indexes = _drop_secondary_indexes(cursor)
        seconds["lookup tables"] = time.perf_counter() - began

        began = time.perf_counter()
        cursor.execute(_INSERT, {"events": events, "hours": _hours(), "devices": DEVICES})
        seconds["INSERT … SELECT"] = time.perf_counter() - began

        began = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        for statement in indexes:
            cursor.execute(statement)
        cursor.execute("RESET maintenance_work_mem")
        seconds[f"{len(indexes)} indexes rebuilt"] = time.perf_counter() - began

        began = time.perf_counter()
        cursor.execute("DROP TABLE bench_creative, bench_viewer, bench_title")
        # Every table: the seeded ones too, as autovacuum would have by the night's rollup.
        cursor.execute("VACUUM ANALYZE")
        seconds["VACUUM ANALYZE"] = time.perf_counter() - began
    return seconds


def _hours() -> list[int]:
    return [hour for hour, weight in enumerate(HOUR_WEIGHTS) for _ in range(weight)]


def _lookup_tables(cursor, day: dt.date) -> None:
    """Creatives, viewers and titles numbered 1..n, so that a random number picks one."""
    cursor.execute(
        """
        CREATE TEMP TABLE bench_creative AS
        SELECT row_number() OVER (ORDER BY c.id) AS n, c.id AS creative_id, c.line_item_id,
               c.advertiser_id, li.pricing,
               (li.bid * 1000)::bigint AS impression_micros,
               (li.bid * 1000000)::bigint AS click_micros,
               (%(day)s::timestamp AT TIME ZONE a.timezone) AS day_start
        FROM ads_creative c
        JOIN ads_lineitem li ON li.id = c.line_item_id
        JOIN ads_advertiser a ON a.id = c.advertiser_id
        """,
        {"day": day},
    )
    cursor.execute(
        """
        CREATE TEMP TABLE bench_viewer AS
        SELECT row_number() OVER (ORDER BY id) AS n, id, device, region FROM catalog_viewer
        """
    )
    cursor.execute(
        """
        CREATE TEMP TABLE bench_title AS
        SELECT row_number() OVER (ORDER BY t.id) AS n, t.id, array_agg(b.id) AS breaks
        FROM catalog_title t JOIN catalog_adbreak b ON b.title_id = t.id
        GROUP BY t.id
        """
    )
    for table in ("bench_creative", "bench_viewer", "bench_title"):
        cursor.execute(f"CREATE UNIQUE INDEX ON {table} (n)")
        cursor.execute(f"ANALYZE {table}")


def _drop_secondary_indexes(cursor) -> list[str]:
    """Drops the event table's indexes but its primary key; returns the statements that make
    them again."""
    cursor.execute(
        """
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = 'ads_adevent'::regclass AND contype = 'u'
        """
    )
    constraints = cursor.fetchall()
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = 'ads_adevent'::regclass AND NOT x.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        """
    )
    indexes = cursor.fetchall()
    for name, _ in constraints:
        cursor.execute(f'ALTER TABLE ads_adevent DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    # A partitioned table's index is defined ON ONLY the parent: made again on all of it.
    return [definition.replace(" ON ONLY ", " ON ") for _, definition in indexes] + [
        f'ALTER TABLE ads_adevent ADD CONSTRAINT "{name}" {definition}'
        for name, definition in constraints
    ]


_INSERT = """
INSERT INTO ads_adevent (
    advertiser_id, line_item_id, creative_id, viewer_id, title_id, ad_break_id, event_type,
    event_id, client_event_id, decision_id, pod_position, device, region, occurred_at,
    decided_at, received_at, cost_micros
)
SELECT
    c.advertiser_id, c.line_item_id, c.creative_id, v.id, t.id,
    t.breaks[1 + r.g %% cardinality(t.breaks)],
    r.event_type,
    'bench-' || r.g, '', gen_random_uuid(), 1 + r.g %% 4,
    CASE WHEN r.usual_device THEN v.device ELSE r.other_device END,
    CASE WHEN r.usual_region THEN v.region ELSE 'intl' END,
    c.day_start + r.offset_seconds * interval '1 second',
    c.day_start + r.offset_seconds * interval '1 second',
    c.day_start + (r.offset_seconds + 2) * interval '1 second',
    CASE
        WHEN r.event_type = 'impression' AND c.pricing = 'cpm' THEN c.impression_micros
        WHEN r.event_type = 'click' AND c.pricing = 'cpc' THEN c.click_micros
        ELSE 0
    END
FROM (
    SELECT
        g,
        1 + floor(power(random(), 2) * (SELECT count(*) FROM bench_creative))::int AS creative_n,
        1 + floor(random() * (SELECT count(*) FROM bench_viewer))::int AS viewer_n,
        1 + floor(power(random(), 3) * (SELECT count(*) FROM bench_title))::int AS title_n,
        CASE
            WHEN kind < 0.600 THEN 'impression'
            WHEN kind < 0.710 THEN 'first_quartile'
            WHEN kind < 0.810 THEN 'midpoint'
            WHEN kind < 0.900 THEN 'third_quartile'
            WHEN kind < 0.994 THEN 'complete'
            ELSE 'click'
        END AS event_type,
        (%(hours)s::int[])[1 + floor(random() * cardinality(%(hours)s::int[]))::int] * 3600
            + floor(random() * 3600) AS offset_seconds,
        random() < 0.8 AS usual_device,
        (%(devices)s::text[])[1 + floor(random() * 4)::int] AS other_device,
        random() < 0.95 AS usual_region
    FROM (SELECT g, random() AS kind FROM generate_series(1, %(events)s) AS g) AS numbers
) AS r
JOIN bench_creative c ON c.n = r.creative_n
JOIN bench_viewer v ON v.n = r.viewer_n
JOIN bench_title t ON t.n = r.title_n
"""
