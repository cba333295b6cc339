"""Counters for budgets, frequency caps, pacing and live stats: Redis in the full stack, a
locked dictionary in the embedded default (one process).

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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

MICROS = 1_000_000
FULL_MEMORY_SECONDS = 60.0
FULL_MEMORY_SIZE = 200_000  # entries before expired ones are swept


@dataclass(frozen=True, slots=True)
class Bump:
    """Add `amount` to `key`; with `limit`, only if the result stays ≤ limit."""

    key: str
    amount: int
    ttl: int | None = None
    limit: int | None = None


class FullMemory:
    """Bumps recently refused because their key was at its limit (see the module docstring).
    Plain dict operations: safe across threads under the GIL, and a lost update only costs
    one more round trip."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, int, int], float] = {}

    def remember(self, bump: Bump) -> None:
        if bump.limit is None:
            return
        now = time.monotonic()
        if len(self._until) >= FULL_MEMORY_SIZE:
            self._until = {key: until for key, until in self._until.items() if until > now}
        seconds = min(FULL_MEMORY_SECONDS, bump.ttl or FULL_MEMORY_SECONDS)
        self._until[(bump.key, bump.amount, bump.limit)] = now + seconds

    def known_full(self, group: Sequence[Bump]) -> bool:
        """True when a bump of `group` was refused at its limit lately: reserving it would
        fail again."""
        if not self._until:
            return False
        now = time.monotonic()
        for bump in group:
            if bump.limit is not None:
                until = self._until.get((bump.key, bump.amount, bump.limit))
                if until is not None and until > now:
                    return True
        return False


class LocalCounters:
    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float | None]] = {}
        self._lock = threading.Lock()
        self.full = FullMemory()

    def _get(self, key: str, now: float) -> int:
        value, expires = self._values.get(key, (0, None))
        if expires is not None and expires <= now:
            del self._values[key]
            return 0
        return value

    def get_many(self, keys: Sequence[str]) -> list[int]:
        now = time.monotonic()
        with self._lock:
            return [self._get(key, now) for key in keys]

    def add_many(self, bumps: Sequence[Bump]) -> None:
        self.reserve([bumps])

    def reserve(self, groups: Sequence[Sequence[Bump]]) -> list[bool]:
        now = time.monotonic()
        results = []
        with self._lock:
            for group in groups:
                current = [self._get(bump.key, now) for bump in group]
                blocker = next(
                    (
                        bump
                        for bump, value in zip(group, current, strict=True)
                        if bump.limit is not None and value + bump.amount > bump.limit
                    ),
                    None,
                )
                if blocker is not None:
                    self.full.remember(blocker)
                    results.append(False)
                    continue
                for bump, value in zip(group, current, strict=True):
                    expires = self._values.get(bump.key, (0, None))[1]
                    if bump.ttl is not None and expires is None:
                        expires = now + bump.ttl
                    self._values[bump.key] = (value + bump.amount, expires)
                results.append(True)
        return results

    def set_many(self, values: Mapping[str, int], ttl: int | None = None) -> None:
        expires = time.monotonic() + ttl if ttl else None
        with self._lock:
            for key, value in values.items():
                self._values[key] = (value, expires)

    def claim(self, key: str, ttl: float) -> bool:
        """True for the first caller until `ttl` seconds pass (a lock for periodic work)."""
        now = time.monotonic()
        with self._lock:
            if self._get(key, now):
                return False
            self._values[key] = (1, now + ttl)
            return True

    def delete_prefix(self, prefix: str) -> None:
        with self._lock:
            for key in [key for key in self._values if key.startswith(prefix)]:
                del self._values[key]

    def claim_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """`claim` of each key, in one go."""
        return [self.claim(key, ttl) for key in keys]


# KEYS: the group's keys; ARGV: amount, ttl (0: none), limit (-1: none) for each key in turn.
# Returns 1 when reserved, or -i when key i (from 1) would pass its limit.
RESERVE_SCRIPT = """
local n = #KEYS
for i = 1, n do
  local limit = tonumber(ARGV[3 * i])
  if limit >= 0 then
    local value = tonumber(redis.call('GET', KEYS[i]) or '0')
    if value + tonumber(ARGV[3 * i - 2]) > limit then return -i end
  end
end
for i = 1, n do
  local value = redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2])
  local ttl = tonumber(ARGV[3 * i - 1])
  if ttl > 0 and redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return 1
"""


class RedisCounters:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._reserve = self._redis.register_script(RESERVE_SCRIPT)
        self._redis.script_load(RESERVE_SCRIPT)
        self.full = FullMemory()

    def get_many(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        return [int(value or 0) for value in self._redis.mget(keys)]

    def add_many(self, bumps: Sequence[Bump]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for bump in bumps:
            pipe.incrby(bump.key, bump.amount)
            if bump.ttl:
                pipe.expire(bump.key, bump.ttl, nx=True)
        pipe.execute()

    def reserve(self, groups: Sequence[Sequence[Bump]]) -> list[bool]:
        # EVALSHA straight into the pipeline: a registered Script object called on a pipeline
        # asks SCRIPT EXISTS first, one more round trip per decision.
        pipe = self._redis.pipeline(transaction=False)
        for group in groups:
            args: list[int] = []
            for bump in group:
                args += [bump.amount, bump.ttl or 0, -1 if bump.limit is None else bump.limit]
            keys = [bump.key for bump in group]
            pipe.evalsha(self._reserve.sha, len(keys), *keys, *args)
        try:
            results = pipe.execute()
        except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
            self._redis.script_load(RESERVE_SCRIPT)
            return self.reserve(groups)
        for group, result in zip(groups, results, strict=True):
            if result < 0:
                self.full.remember(group[-result - 1])
        return [result == 1 for result in results]

    def set_many(self, values: Mapping[str, int], ttl: int | None = None) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, value in values.items():
            pipe.set(key, value, ex=ttl)
        pipe.execute()

    def claim(self, key: str, ttl: float) -> bool:
        return bool(self._redis.set(key, 1, nx=True, px=int(ttl * 1000)))

    def delete_prefix(self, prefix: str) -> None:
        batch = []
        for key in self._redis.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self._redis.delete(*batch)
                batch = []
        if batch:
            self._redis.delete(*batch)

    def claim_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """`claim` of each key, in one round trip."""
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, 1, nx=True, px=int(ttl * 1000))
        return [bool(result) for result in pipe.execute()]


Counters = LocalCounters | RedisCounters


@cache
def counters() -> Counters:
    """The process's counters, on Redis when REDIS_URL is set."""
    if settings.REDIS_URL:
        return RedisCounters(settings.REDIS_URL)
    return LocalCounters()
