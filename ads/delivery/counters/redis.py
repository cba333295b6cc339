"""The Redis backend (the full stack): shared by every process of every machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from ads.delivery.counters.base import Bump, FullMemory

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
    shared = True

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
