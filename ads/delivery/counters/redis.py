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
        """One EVALSHA of RESERVE_SCRIPT per group, written to one pooled connection at once
        (a pipeline without redis-py's pipeline object: packing each argument through it cost
        about a third of a decision's CPU)."""
        payload = b"".join(_reserve_command(self._reserve.sha, group) for group in groups)
        results = self._send(payload, len(groups))
        if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
            # Redis restarted or flushed its scripts: nothing of this pod was reserved.
            self._redis.script_load(RESERVE_SCRIPT)
            return self.reserve(groups)
        for result in results:
            if isinstance(result, Exception):
                raise result
        for group, result in zip(groups, results, strict=True):
            if result < 0:
                self.full.remember(group[-result - 1])
        return [result == 1 for result in results]

    def _send(self, payload: bytes, replies: int) -> list:
        """Send packed commands on a pooled connection and read their `replies`, each a value
        or the ResponseError it answered (every reply is read, so the connection goes back
        to the pool clean). A connection that fails before anything was sent (one the
        server closed while it waited in the pool) is made again once."""
        pool = self._redis.connection_pool
        connection = pool.get_connection()
        try:
            try:
                connection.send_packed_command([payload])
            except redis.exceptions.ConnectionError:
                connection.disconnect()
                connection.send_packed_command([payload])
            results: list = []
            for _ in range(replies):
                try:
                    results.append(connection.read_response(disconnect_on_error=False))
                except redis.exceptions.ResponseError as error:
                    results.append(error)
            return results
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

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


def _reserve_command(sha: str, group: Sequence[Bump]) -> bytes:
    """EVALSHA of the reserve script for `group`, in the Redis protocol."""
    args: list[str | int] = ["EVALSHA", sha, len(group)]
    args += [bump.key for bump in group]
    for bump in group:
        args += [bump.amount, bump.ttl or 0, -1 if bump.limit is None else bump.limit]
    return _packed(args)


def _packed(args: Sequence[str | int]) -> bytes:
    """A command in the Redis protocol (RESP): an array of bulk strings (formatted as text and
    encoded once; a bulk string's length counts its UTF-8 bytes)."""
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        text = str(arg)
        size = len(text) if text.isascii() else len(text.encode())
        parts.append(f"${size}\r\n{text}\r\n")
    return "".join(parts).encode()
