"""Counters for budgets, frequency caps, pacing and live stats, in one of three backends
(`settings.COUNTERS_BACKEND`): Redis in the full stack (`redis`), a SQLite file that every
process of the machine shares in the embedded default (`sqlite`), or a locked dictionary of one
process (`memory`, the test suite's).

Values are integers: money in micros (a millionth of the account's currency), so spend adds up
exactly. The event table stays the truth; these can be rebuilt from it
(`ads.services.counters_rebuild`).

A *reservation* checks and increments a group of keys atomically: every key of the group must
stay within its limit, or none is incremented. Frequency caps and budgets are reserved at the
decision, so concurrent decisions can never push a viewer past a cap or a line item past its
budget. A group's keys share one line item's hash tag, so a group lives in one Redis Cluster slot.

A reservation refused because a key would pass its limit is remembered by the process (the key,
the amount and the limit) for FULL_MEMORY_SECONDS at most: these counters only grow within
their period (a new hour or day is a new key, and a rebuild never lowers them), so the engine
skips that slot at once instead of losing the same race again, one Redis round trip each time.
A changed limit (a raised cap or budget) is another memory key, so it takes effect at once.

The counters are *known* while the epoch key is present (`keys.epoch`). A store that lost its
state (Redis restarted empty) has no epoch: it refuses reservations and backlog applications
(DeliveryStateUnavailable, `lost`) until `ads.services.counters_heal` has rebuilt it from the
event table, so no line item spends its budget, nor any viewer passes a cap, a second time.
A heal writes budgets first (`keys.budgets_known`), caps second: in between, a reservation
is accepted, one holding a viewer's cap keys once that viewer's caps are read too (`known`:
`keys.viewer_caps_known`, set with them by `raise_many`, which only ever raises a key), and a
backlog entry's effects are applied on every key but the viewers' (`apply_once`, its marker
recording each part), the viewers' part waiting for the epoch. The heal's own steps that make
the state known (`hold`, `mark_known(claim=...)`) need its claim still held, so a store that
lost its state again during a heal is not taken for healed.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DatabaseError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder

from ads.delivery.counters.base import (
    FULL_MEMORY_SECONDS,
    FULL_MEMORY_SIZE,
    MICROS,
    Bump,
    DeliveryStateUnavailable,
    FullMemory,
    ViewerStateUnknown,
)
from ads.delivery.counters.local import LocalCounters
from ads.delivery.counters.redis import RedisCounters
from ads.delivery.counters.sqlite import SqliteCounters

__all__ = [
    "FULL_MEMORY_SECONDS",
    "FULL_MEMORY_SIZE",
    "MICROS",
    "Bump",
    "Counters",
    "DeliveryStateUnavailable",
    "FullMemory",
    "LocalCounters",
    "RedisCounters",
    "SqliteCounters",
    "ViewerStateUnknown",
    "counters",
]

Counters = LocalCounters | RedisCounters | SqliteCounters


@cache
def counters() -> Counters:
    """The process's counters, in the backend the settings name. A SQLite file that is new, or
    was built for another database, is rebuilt from the event table first."""
    backend = settings.COUNTERS_BACKEND
    if backend == "redis":
        return RedisCounters(settings.REDIS_URL)
    if backend == "memory":
        return LocalCounters()
    store = SqliteCounters(settings.COUNTERS_SQLITE_PATH)
    rebuild_if_new(store)
    return store


def rebuild_if_new(store: SqliteCounters) -> bool:
    """Rebuild `store` from the event table when it does not count for this database yet (a new
    file, or the database was made again): True when this process did. Of several processes
    starting together, one rebuilds; the others go on at once."""
    database = database_identity()
    if database is None or store.counts_for() == database:
        return False
    if not store.start_over_for(database):
        return False
    # ads.services builds on this package: imported when needed, not at import time.
    from ads.services.rebuild import counters_rebuild

    counters_rebuild(store=store)
    return True


def database_identity() -> str | None:
    """This database: its name and when its first migration was applied, which changes when
    it is made again. None before migrations (nothing to rebuild from yet)."""
    try:
        # In a savepoint: a missing table must not abort a caller's PostgreSQL transaction.
        with transaction.atomic():
            first_applied = (
                MigrationRecorder.Migration.objects.order_by("pk")
                .values_list("applied", flat=True)
                .first()
            )
    except (DatabaseError, SynchronousOnlyOperation):
        return None
    if first_applied is None:
        return None
    return f"{connection.settings_dict['NAME']}@{first_applied.isoformat()}"
