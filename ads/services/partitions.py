"""The ad event table's daily partitions (PostgreSQL; SQLite keeps one plain table).

The table is range-partitioned on `decided_at`, one partition per UTC day, named
`ads_adevent_pYYYYMMDD` (migration 0006). There is no default partition:

- events reach the table through `events_record`, whose tokens were issued in the last
  TOKEN_TTL, so a live event needs only yesterday's or today's partition, and those are made
  EVENT_PARTITIONS_AHEAD_DAYS ahead by the hourly beat task (`event_partitions_make_ahead`).
  Should the beat have stopped for longer, the insert that finds no partition makes its
  batch's days (each a genuine token's: recent) and is retried, never answered as an error;
- a row for a day without a partition (history written by a loader, a test's far-off day) is
  refused by PostgreSQL ("no partition of relation ... found for row"): a clear error rather
  than a row parked where retention cannot drop it by partition. Writers of history call
  `event_partitions_make` for their days first;
- a default partition would also have to be scanned whenever a day's partition is made, would
  block making one if it held that day's rows, and rules out detaching CONCURRENTLY.

Old days leave by `event_partition_drop`: DETACH PARTITION ... CONCURRENTLY (inserts into
today's partition are not blocked), then DROP TABLE; never a DELETE. Deciding which days may go
(retention, and whether the rollups have counted them) is `analytics.retention`'s job, as the
rollups live above this app.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import IntegrityError, ProgrammingError, connection, transaction

from ads.models import AdEvent

TABLE = AdEvent._meta.db_table
_NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def is_partitioned() -> bool:
    """Whether the event table is partitioned (PostgreSQL, migrated)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [TABLE])
        return cursor.fetchone() is not None


def event_partition_days() -> list[date]:
    """The days that have a partition, in order (none on SQLite). A partition left half
    detached by an interrupted drop is not counted: the next drop of its day finishes it."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND NOT i.inhdetachpending",
            [TABLE],
        )
        names = [name for (name,) in cursor.fetchall()]
    days = []
    for name in names:
        match = _NAME.match(name)
        if match:
            days.append(datetime.strptime(match.group(1), "%Y%m%d").date())
    return sorted(days)


def event_partitions_make(*, first_day: date, last_day: date) -> list[date]:
    """Make the missing partitions of the days first_day..last_day (UTC); returns the days made.
    Idempotent; nothing to do on SQLite."""
    if not is_partitioned():
        return []
    existing = set(event_partition_days())
    made = []
    day = first_day
    while day <= last_day:
        if day not in existing and _make(day):
            made.append(day)
        day += timedelta(days=1)
    return made


def _make(day: date) -> bool:
    """Make one day's partition; False when another process made it first (two CREATE TABLE
    IF NOT EXISTS at once: the second can fail on the catalog's unique index)."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF {TABLE} "
                "FOR VALUES FROM (%s) TO (%s)",
                [start, start + timedelta(days=1)],
            )
    except (IntegrityError, ProgrammingError):
        if day not in event_partition_days():
            raise
        return False
    return True


def event_partitions_make_ahead(*, at: datetime) -> list[date]:
    """Yesterday's to EVENT_PARTITIONS_AHEAD_DAYS ahead's partitions (UTC days of `at`):
    yesterday's, as tokens issued before midnight are still reported after it."""
    today = at.astimezone(UTC).date()
    return event_partitions_make(
        first_day=today - timedelta(days=1),
        last_day=today + timedelta(days=settings.EVENT_PARTITIONS_AHEAD_DAYS),
    )


def event_partition_drop(*, day: date) -> bool:
    """Detach (concurrently: inserts into other days go on) and drop the partition of `day`;
    False when it has none. Runs outside a transaction, as DETACH ... CONCURRENTLY must: a
    partition whose detaching was interrupted is finished with FINALIZE."""
    if not is_partitioned():
        return False
    if connection.in_atomic_block:
        raise RuntimeError("event_partition_drop detaches concurrently: call it outside atomic().")
    name = partition_name(day)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND c.relname = %s",
            [TABLE, name],
        )
        row = cursor.fetchone()
        if row is None:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            orphan = cursor.fetchone()[0]  # detached, not yet dropped
            if orphan:
                cursor.execute(f"DROP TABLE {name}")
            return bool(orphan)
        (pending,) = row
        cursor.execute(
            f"ALTER TABLE {TABLE} DETACH PARTITION {name} "
            + ("FINALIZE" if pending else "CONCURRENTLY")
        )
        cursor.execute(f"DROP TABLE {name}")
    return True


def is_missing_partition(error: BaseException) -> bool:
    """Whether a database error is PostgreSQL's refusal of a row whose day has no partition."""
    cause = error.__cause__ or error
    return getattr(cause, "sqlstate", None) == "23514" and "no partition" in str(cause)
