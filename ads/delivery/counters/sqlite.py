"""The SQLite backend (the embedded default): one file that every local process shares, so the
server, the scheduler, the simulated audience and the management commands count together, and
the counts survive a restart.

The file is in WAL mode: readers never wait for the writer, and a writer waits for another
(the busy timeout) instead of failing. A reservation runs in one `BEGIN IMMEDIATE` transaction,
which takes the file's write lock before it reads, so no other process can write between its
check and its increment: the guarantee the Redis Lua script gives. Expiry times are wall-clock
seconds (shared by the processes, unlike a monotonic clock); an expired row reads as 0, is
replaced by the next write, and is swept now and then.

A `meta` table names the database the counts belong to (see `counters()`), so that a database
made again does not inherit another world's spend.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ads.delivery import keys
from ads.delivery.counters.base import (
    APPLIED_TTL,
    Bump,
    DeliveryStateUnavailable,
    FullMemory,
    ViewerStateUnknown,
)

BUSY_TIMEOUT_SECONDS = 30.0
SWEEP_EVERY_SECONDS = 300.0
BATCH = 500  # keys per statement, well under SQLite's limit on bound variables

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counter "
    "(key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)
# An expired row counts as absent: the bump starts it again with its own expiry. A live row
# keeps its expiry, or takes the bump's when it has none (Redis: INCRBY, then EXPIRE NX).
ADD_SQL = """
INSERT INTO counter (key, value, expires_at) VALUES (:key, :amount, :expires_at)
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN counter.expires_at <= :now THEN excluded.value
               ELSE counter.value + excluded.value END,
  expires_at = CASE WHEN counter.expires_at <= :now THEN excluded.expires_at
                    ELSE coalesce(counter.expires_at, excluded.expires_at) END
"""
SET_SQL = """
INSERT INTO counter (key, value, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""
# An expired row counts as absent; a live one keeps its expiry (or takes the floor's).
RAISE_SQL = """
INSERT INTO counter (key, value, expires_at) VALUES (:key, :amount, :expires_at)
ON CONFLICT (key) DO UPDATE SET
  value = CASE WHEN counter.expires_at <= :now THEN excluded.value
               ELSE max(counter.value, excluded.value) END,
  expires_at = CASE WHEN counter.expires_at <= :now THEN excluded.expires_at
                    ELSE coalesce(counter.expires_at, excluded.expires_at) END
"""
# A row comes back only when this call took the key: new, expired, or at 0.
CLAIM_SQL = """
INSERT INTO counter (key, value, expires_at) VALUES (:key, :token, :expires_at)
ON CONFLICT (key) DO UPDATE SET value = :token, expires_at = excluded.expires_at
WHERE counter.expires_at <= :now OR counter.value = 0
RETURNING key
"""


class SqliteCounters:
    """Counters in a SQLite file, shared by the processes of one machine."""

    shared = True

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock  # wall-clock seconds: expiry times are shared between processes
        self.full = FullMemory()
        self._local = threading.local()
        self._last_sweep = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connection()
        db.execute("PRAGMA journal_mode=WAL")  # kept by the file: once is enough
        for statement in SCHEMA:
            db.execute(statement)

    # -- connections: one per thread (sqlite3's rule) and per process (never across a fork) --

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            # Autocommit (isolation_level=None): each write says how it locks.
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            # NORMAL is durable in WAL mode across a crash of the process (not of the machine).
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A transaction that holds the file's write lock from its first statement."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._sweep_now_and_then()

    def _sweep_now_and_then(self) -> None:
        if time.monotonic() - self._last_sweep < SWEEP_EVERY_SECONDS:
            return
        self._last_sweep = time.monotonic()
        self._connection().execute("DELETE FROM counter WHERE expires_at <= ?", (self._clock(),))

    @staticmethod
    def _read(db: sqlite3.Connection, keys: Sequence[str], now: float) -> dict[str, int]:
        values: dict[str, int] = {}
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            rows = db.execute(
                f"SELECT key, value FROM counter WHERE key IN ({','.join('?' * len(batch))}) "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (*batch, now),
            )
            values.update(rows)
        return values

    # -- the interface every backend shares ---------------------------------------------------

    def get_many(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        values = self._read(self._connection(), keys, self._clock())
        return [values.get(key, 0) for key in keys]

    def add_many(self, bumps: Sequence[Bump]) -> None:
        if not bumps:
            return
        now = self._clock()
        with self._writing() as db:
            db.executemany(ADD_SQL, [_add_row(bump, now) for bump in bumps])

    def _check_known(self, db: sqlite3.Connection, now: float, known: str | None = None) -> bool:
        """True when the whole state is known; False when the budgets are (a heal's first
        phase is written), with the `known` marker when given; else raise."""
        guard_keys = [keys.epoch(), keys.healing(), keys.budgets_known()]
        guard = self._read(db, [*guard_keys, known] if known else guard_keys, now)
        if guard.get(keys.epoch()) and not guard.get(keys.healing()):
            return True
        if not guard.get(keys.budgets_known()):
            raise DeliveryStateUnavailable("The counters are not known yet.", lost=True)
        if known is not None and not guard.get(known):
            raise ViewerStateUnknown()
        return False

    def state_known(self) -> bool:
        try:
            return self._check_known(self._connection(), self._clock())
        except DeliveryStateUnavailable:
            return False

    def mark_known(self, *, claim: int | None = None) -> None:
        """Set the epoch (and forget the heal's keys); with `claim` (a heal's token), only
        while the healing key holds it (see RedisCounters.mark_known)."""
        now = self._clock()
        with self._writing() as db:
            if (
                claim is not None
                and self._read(db, [keys.healing()], now).get(keys.healing()) != claim
            ):
                raise DeliveryStateUnavailable("The heal's claim was lost.", lost=True)
            db.execute(SET_SQL, (keys.epoch(), 1, None))
            db.execute(
                "DELETE FROM counter WHERE key IN (?, ?)", (keys.healing(), keys.budgets_known())
            )

    def release(self, key: str) -> None:
        with self._writing() as db:
            db.execute("DELETE FROM counter WHERE key = ?", (key,))

    def release_heal(self, *, claim: int) -> None:
        """Delete the healing claim and budgets known while the claim holds `claim` (see
        RedisCounters.release_heal)."""
        with self._writing() as db:
            if self._read(db, [keys.healing()], self._clock()).get(keys.healing()) == claim:
                db.execute(
                    "DELETE FROM counter WHERE key IN (?, ?)",
                    (keys.healing(), keys.budgets_known()),
                )

    def hold(self, held: Sequence[str], ttl: float, *, token: int = 1) -> None:
        """Set each key of `held` for `ttl` seconds while the first holds the heal's `token`,
        in one transaction (see RedisCounters.hold)."""
        now = self._clock()
        with self._writing() as db:
            if self._read(db, held[:1], now).get(held[0]) != token:
                raise DeliveryStateUnavailable("The heal's claim was lost.", lost=True)
            db.executemany(
                SET_SQL, [(key, token if key == held[0] else 1, now + ttl) for key in held]
            )

    def apply_once(
        self, marker: str, bumps: Sequence[Bump], viewer_bumps: Sequence[Bump] = ()
    ) -> bool:
        """Add what `marker` says was not added yet, in one transaction (see
        RedisCounters.apply_once): True when the counters hold both parts now."""
        now = self._clock()
        with self._writing() as db:
            whole = self._check_known(db, now)
            done = self._read(db, [marker], now).get(marker, 0)
            level = keys.APPLIED_ALL if whole else keys.APPLIED_BUDGETS
            if done >= level:
                return done == keys.APPLIED_ALL
            adding = [*bumps] if done < keys.APPLIED_BUDGETS else []
            if whole:
                adding += viewer_bumps
            db.executemany(ADD_SQL, [_add_row(bump, now) for bump in adding])
            db.execute(SET_SQL, (marker, level, now + APPLIED_TTL))
            return level == keys.APPLIED_ALL

    def reserve(self, groups: Sequence[Sequence[Bump]], *, known: str | None = None) -> list[bool]:
        """Each group whole or not at all, as the Redis script does; all groups in one
        transaction (one lock, one commit). Known budgets are enough, with the `known` marker
        present when given (see RedisCounters.reserve)."""
        now = self._clock()
        results = []
        with self._writing() as db:
            self._check_known(db, now, known)
            for group in groups:
                current = self._read(db, [bump.key for bump in group], now)
                blocker = next(
                    (
                        bump
                        for bump in group
                        if bump.limit is not None
                        and current.get(bump.key, 0) + bump.amount > bump.limit
                    ),
                    None,
                )
                if blocker is not None:
                    self.full.remember(blocker)
                    results.append(False)
                    continue
                db.executemany(ADD_SQL, [_add_row(bump, now) for bump in group])
                results.append(True)
        return results

    def set_many(self, values: Mapping[str, int], ttl: int | None = None) -> None:
        if not values:
            return
        expires_at = self._clock() + ttl if ttl else None
        with self._writing() as db:
            db.executemany(SET_SQL, [(key, value, expires_at) for key, value in values.items()])

    def raise_many(self, floors: Sequence[Bump], *, marker: Bump | None = None) -> None:
        """Raise each key to at least its bump's amount (a new key takes the bump's ttl; a key
        holding more keeps it), then set `marker`, in one transaction (see
        RedisCounters.raise_many)."""
        now = self._clock()
        with self._writing() as db:
            db.executemany(RAISE_SQL, [_add_row(bump, now) for bump in floors])
            if marker is not None:
                expires_at = now + marker.ttl if marker.ttl else None
                db.execute(SET_SQL, (marker.key, marker.amount, expires_at))

    def claim(self, key: str, ttl: float, *, token: int = 1) -> bool:
        """True for the first caller until `ttl` seconds pass (a lock for periodic work, a
        heal's claim), the key holding `token` meanwhile."""
        return self.claim_many([key], ttl, token=token)[0]

    def claim_many(self, keys: Sequence[str], ttl: float, *, token: int = 1) -> list[bool]:
        """`claim` of each key, in one transaction."""
        if not keys:
            return []
        now = self._clock()
        with self._writing() as db:
            return [
                bool(
                    db.execute(
                        CLAIM_SQL,
                        {"key": key, "token": token, "expires_at": now + ttl, "now": now},
                    ).fetchall()
                )
                for key in keys
            ]

    def delete_prefix(self, prefix: str) -> None:
        # A range on the primary key: every key that starts with `prefix` sorts inside it.
        with self._writing() as db:
            db.execute(
                "DELETE FROM counter WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff")
            )

    # -- which database the counts belong to --------------------------------------------------

    def counts_for(self) -> str | None:
        """The database these counts were built from (None: a new file)."""
        row = (
            self._connection().execute("SELECT value FROM meta WHERE name = 'database'").fetchone()
        )
        return row[0] if row else None

    def start_over_for(self, database: str) -> bool:
        """Empty the counters and make them `database`'s, unless they already are (another
        process got there first): True when this call did, and should rebuild them."""
        with self._writing() as db:
            row = db.execute("SELECT value FROM meta WHERE name = 'database'").fetchone()
            if row and row[0] == database:
                return False
            db.execute("DELETE FROM counter")
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('database', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (database,),
            )
            return True


def _add_row(bump: Bump, now: float) -> dict:
    return {
        "key": bump.key,
        "amount": bump.amount,
        "expires_at": now + bump.ttl if bump.ttl else None,
        "now": now,
    }
