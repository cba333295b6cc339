"""The Redis backend (the full stack): shared by every process of every machine."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import redis

from ads.delivery.counters.base import Bump, FullMemory

# KEYS: the group's keys; ARGV[1]: "amount ttl limit" for each key in turn, space-separated
# (ttl 0: none, limit -1: none): one argument to pack instead of three a key. The amounts
# reach INCRBY as the strings sent (a Lua number would print large ones as 1e+15).
# Returns 1 when reserved, or -i when key i (from 1) would pass its limit.
RESERVE_SCRIPT = """
local spec = {}
for word in string.gmatch(ARGV[1], '%S+') do spec[#spec + 1] = word end
local n = #KEYS
for i = 1, n do
  local limit = tonumber(spec[3 * i])
  if limit >= 0 then
    local value = tonumber(redis.call('GET', KEYS[i]) or '0')
    if value + tonumber(spec[3 * i - 2]) > limit then return -i end
  end
end
for i = 1, n do
  redis.call('INCRBY', KEYS[i], spec[3 * i - 2])
  local ttl = tonumber(spec[3 * i - 1])
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
        self._local = threading.local()  # each thread's connection for reservations

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
        """One EVALSHA of RESERVE_SCRIPT per group, written to one connection at once (a
        pipeline without redis-py's pipeline object: packing each argument through it cost
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
        """Send packed commands on this thread's own connection and read their `replies`, each
        a value or the ResponseError it answered (every reply is read, so the connection is
        clean for the next send). The pool's checkout and return cost a tenth of a decision;
        a server thread sends one reservation at a time. A connection that fails before
        anything was sent (one the server closed while it was idle) is made again once."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._redis.connection_pool.make_connection()
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
            connection.disconnect()  # made again at the next send
            raise

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
    spec = " ".join(
        f"{bump.amount} {bump.ttl or 0} {-1 if bump.limit is None else bump.limit}"
        for bump in group
    )
    return _packed(["EVALSHA", sha, len(group), *(bump.key for bump in group), spec])


def _packed(args: Sequence[str | int]) -> bytes:
    """A command in the Redis protocol (RESP): an array of bulk strings (formatted as text and
    encoded once; a bulk string's length counts its UTF-8 bytes)."""
    parts = [f"*{len(args)}\r\n"]
    for arg in args:
        text = str(arg)
        size = len(text) if text.isascii() else len(text.encode())
        parts.append(f"${size}\r\n{text}\r\n")
    return "".join(parts).encode()
