"""The nightly rollup of 10 million ad events on PostgreSQL: `analytics.services.rollup_day`.

Seeds a small world with the ORM (bench/_rollup_world.py: 30 advertisers in 10 time zones,
1,000 line items, 3,000 creatives, 2,000 titles, 50,000 viewers), has PostgreSQL write one day
of events (INSERT … SELECT … FROM generate_series), then times `rollup_day(day=DAY)` for all
accounts twice, with the time of each SQL statement, and checks that both runs leave identical
rows and count every event:
- first with no rows stored for the day: a backfill, every row inserted;
- then again: the nightly run, which finds the rows the intraday refresh kept current during
  the day and rewrites only those that changed (here none; in production, the last minutes').
Target: the nightly rollup in ≤ 30 s (the backfill's figure is printed beside it).

Every run drops and creates the scratch database and drops it at the end; it skips, exiting
0, when PostgreSQL does not answer.

    python bench/rollups.py
    BENCH_ROLLUP_DATABASE_URL   postgres://postgres@127.0.0.1:5432/interlude_rollup_bench
                                (the name must say bench)
    BENCH_ROLLUP_EVENTS=10000000 (smaller for a quick run)
    BENCH_ROLLUP_KEEP=1         keep the database afterwards; BENCH_ROLLUP_REUSE=1 then skips
                                the seeding and the fill when it still holds events
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

import _cpu  # noqa: E402  (helpers beside this file)
import _scratch  # noqa: E402

DATABASE_URL = os.environ.get(
    "BENCH_ROLLUP_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/interlude_rollup_bench"
)
EVENTS = int(os.environ.get("BENCH_ROLLUP_EVENTS", "10000000"))
KEEP = os.environ.get("BENCH_ROLLUP_KEEP") == "1"
REUSE = os.environ.get("BENCH_ROLLUP_REUSE") == "1"
DAY = dt.date(2026, 6, 10)
TARGET_SECONDS = 30.0


def main() -> int:
    return _scratch.on_scratch_database(
        DATABASE_URL, _bench, script="bench/rollups.py", keep=KEEP, reuse=REUSE
    )


def _bench(reusing: bool) -> int:
    import _rollup_world
    from django.db import connection

    from ads.models import AdEvent, Advertiser, Creative, LineItem
    from analytics.models import DailyBreakdown, DailyDelivery
    from catalog.models import Title, Viewer

    print(_machine(), flush=True)
    if reusing and AdEvent.objects.exists():
        print("Reusing the kept database and its events")
        with connection.cursor() as cursor:
            cursor.execute(
                f"TRUNCATE {DailyDelivery._meta.db_table}, {DailyBreakdown._meta.db_table}"
            )
    else:
        began = time.perf_counter()
        _rollup_world.seed()
        print(
            f"Seeded {Advertiser.objects.count()} advertisers "
            f"({len(set(Advertiser.objects.values_list('timezone', flat=True)))} time zones), "
            f"{LineItem.objects.count():,} line items, {Creative.objects.count():,} creatives, "
            f"{Title.objects.count():,} titles, {Viewer.objects.count():,} viewers "
            f"in {time.perf_counter() - began:.1f} s",
            flush=True,
        )
        began = time.perf_counter()
        steps = _rollup_world.fill(DAY, EVENTS)
        print(
            f"Fill: {EVENTS:,} events in {time.perf_counter() - began:.1f} s ("
            + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in steps.items())
            + ")",
            flush=True,
        )
    print(_event_summary())

    from analytics import services

    runs = []
    for name in (
        "first rollup (no stored rows for the day: a backfill)",
        "second rollup (rows stored, as the intraday refresh leaves them for the night)",
    ):
        timer = QueryTimer()
        with connection.execute_wrapper(timer), _cpu.Meter() as meter:
            began = time.perf_counter()
            result = services.rollup_day(day=DAY)
            seconds = time.perf_counter() - began
        runs.append((name, seconds, result, _checksum(), timer))
        print(
            f"\n{name}: {seconds:.1f} s  {result.delivery_rows:,} delivery rows, "
            f"{result.breakdown_rows:,} breakdown rows",
            flush=True,
        )
        timer.print(seconds)
        print(f"  ({meter.usage.describe()})")

    failures = 0
    (_, first, first_result, first_sum, _), (_, second, second_result, second_sum, _) = runs
    same = first_result == second_result and first_sum == second_sum
    print(
        "\nBoth runs leave identical rows (ids included)"
        if same
        else f"\nMISMATCH between the runs: {first_result} {first_sum} / {second_result} "
        f"{second_sum}"
    )
    failures += not same
    counted, events = _coverage()
    print(
        f"Delivery rows count {counted:,} of the day's {events:,} events"
        + ("" if counted == events else "  MISMATCH")
    )
    failures += counted != events
    print(
        f"\nTarget: rollup of {EVENTS:,} events ≤ {TARGET_SECONDS:g} s: "
        f"nightly (rows stored) {second:.1f} s {_verdict(second)}, "
        f"backfill (no rows stored) {first:.1f} s {_verdict(first)}"
    )
    return failures


def _verdict(seconds: float) -> str:
    return "PASS" if seconds <= TARGET_SECONDS else "MISS"


class QueryTimer:
    """A `connection.execute_wrapper`: the seconds of each statement, by kind (the aggregate
    queries by their GROUP BY, the writes by their table). A statement's time includes
    fetching its rows."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def __call__(self, execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            kind = _kind(sql)
            self.seconds[kind] += time.perf_counter() - began
            self.calls[kind] += 1

    def print(self, total: float) -> None:
        for kind, seconds in self.seconds.items():
            print(f"  {seconds:6.2f} s  {self.calls[kind]:5d}×  {kind}")
        rest = total - sum(self.seconds.values())
        print(f"  {rest:6.2f} s         the rest: Python, COMMIT")


def _kind(sql: str) -> str:
    text = " ".join(sql.split())
    created = re.match(r"CREATE (?:TEMPORARY |TEMP )?TABLE (\w+)", text)
    if created:
        over = " (a pass over the events)" if "ads_adevent" in text else ""
        return f"CREATE TEMPORARY TABLE {created.group(1)}{over}"
    if "ads_adevent" in text and " GROUP BY " in text:
        # The grouped columns come before the first aggregate in the SELECT list.
        selected = re.split(r"\b(?:COUNT|SUM)\(", text.removeprefix("SELECT "), maxsplit=1)[0]
        columns = []
        for column in selected.split(","):
            name = column.strip().split(".")[-1].split(" AS ")[0].strip('" ')
            if name and name not in ("advertiser_id", "line_item_id", "campaign_id", *columns):
                columns.append(name)
        return "aggregate by " + ", ".join(columns)
    table = re.search(r'(?:INTO|FROM|UPDATE|TABLE|ANALYZE) "?(\w+)"?', text)
    return f"{text.split(' ', 1)[0].upper()} {table.group(1) if table else ''}".strip()


def _event_summary() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT event_type, count(*), sum(cost_micros) FROM ads_adevent
            GROUP BY event_type ORDER BY count(*) DESC
            """
        )
        rows = cursor.fetchall()
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('ads_adevent'))")
        (size,) = cursor.fetchone()
    total = sum(count for _, count, _ in rows)
    mix = ", ".join(f"{kind} {count / total:.1%}" for kind, count, _ in rows)
    return f"Events: {total:,} ({size} with indexes): {mix}"


def _checksum() -> tuple:
    """Row counts and an order-independent hash of every row of both rollup tables."""
    from django.db import connection

    with connection.cursor() as cursor:
        sums = []
        for table in ("analytics_dailydelivery", "analytics_dailybreakdown"):
            cursor.execute(f"SELECT count(*), sum(hashtextextended(t::text, 0)) FROM {table} t")
            sums.append(cursor.fetchone())
    return tuple(sums)


def _coverage() -> tuple[int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (SELECT sum(impressions + clicks + first_quartiles + midpoints
                               + third_quartiles + completes) FROM analytics_dailydelivery),
                   (SELECT count(*) FROM ads_adevent)
            """
        )
        counted, events = cursor.fetchone()
    return int(counted or 0), events


def _machine() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
        settings = []
        for name in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather"):
            cursor.execute(f"SHOW {name}")
            settings.append(f"{name} {cursor.fetchone()[0]}")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"Machine: {os.cpu_count()} cores ({_scratch.cpu_model()}), {memory:.0f} GB, "
        f"PostgreSQL {version.split()[0]} ({', '.join(settings)})"
    )


if __name__ == "__main__":
    print(_scratch.machine_reference(), flush=True)
    sys.exit(main())
