"""The Redis backend (the full stack): shared by every process of every machine.

Connections are made again without the caller seeing an error: a pooled connection that
Redis closed (a restart) is found by a PING before use when it sat idle for
HEALTH_CHECK_SECONDS, and a command that fails on a connection error is sent once more on a
new connection. What still fails (Redis down) is raised as DeliveryStateUnavailable, the one
error the engine and the event path know how to answer.

Reservations and backlog applications check, in the same script, that the counters are known
(the epoch key is present and no heal holds the healing key): a Redis that restarted empty
refuses them, instead of letting a line item spend its budget again from zero. Between a heal's
two phases (`keys.budgets_known` set, the epoch not yet), a reservation is accepted, one
holding a viewer's cap keys once that viewer's caps are read (`keys.viewer_caps_known`, set
with them by `raise_many`); a backlog application adds its effects on every key but the
viewers' (`keys.of_viewer`), the rest waits for the epoch. A heal's own steps that say the
state is known (`hold`, `mark_known`) check in the same script that its claim is still held:
a Redis that restarted empty in the middle of a heal is not taken for a healed one.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ads.delivery import keys
from ads.delivery.counters.base import (
    APPLIED_TTL,
    Bump,
    DeliveryStateUnavailable,
    FullMemory,
    ViewerStateUnknown,
)

HEALTH_CHECK_SECONDS = 5
PACKED_READ_SIZE = 1000  # keys from which get_many packs its MGET itself (and keeps it)
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# KEYS: epoch, healing, budgets known, the marker a reservation between a heal's phases needs
# besides (the viewer's caps known; budgets known again when none), then every group's keys in
# turn; ARGV[1]: for each group,
# its number of keys n, then "amount ttl limit" for each of its keys (ttl 0: none, limit -1:
# none), all space-separated. One argument to pack instead of
# three a key, and one script for the whole pod instead of one a group (each group is still all
# or nothing, and the script runs alone, so the groups are applied as one after the other).
# The amounts reach INCRBY as the strings sent (a Lua number would print large ones as 1e+15).
# Returns 0 when the counters are not known (not even the budgets), -1 when only the marker is
# missing, else an array with, for each group, 1 when reserved or -i when its key i (from 1)
# would pass its limit.
RESERVE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
  if redis.call('EXISTS', KEYS[4]) == 0 then return -1 end
end
local spec = {}
for word in string.gmatch(ARGV[1], '%S+') do spec[#spec + 1] = word end
local results = {}
local s, k = 1, 4
while s <= #spec do
  local n = tonumber(spec[s])
  local result = 1
  for i = 1, n do
    local limit = tonumber(spec[s + 3 * i])
    if limit >= 0 then
      local value = tonumber(redis.call('GET', KEYS[k + i]) or '0')
      if value + tonumber(spec[s + 3 * i - 2]) > limit then
        result = -i
        break
      end
    end
  end
  if result == 1 then
    for i = 1, n do
      redis.call('INCRBY', KEYS[k + i], spec[s + 3 * i - 2])
      local ttl = tonumber(spec[s + 3 * i - 1])
      if ttl > 0 and redis.call('TTL', KEYS[k + i]) < 0 then
        redis.call('EXPIRE', KEYS[k + i], ttl)
      end
    end
  end
  results[#results + 1] = result
  s = s + 1 + 3 * n
  k = k + n
end
return results
"""
# KEYS: epoch, healing, budgets known, marker, then the keys of the entry's first part (every
# key but the viewers'), then those of its second; ARGV: the marker's ttl, the number of keys
# in the first part, then amount and ttl (0: none) for each key. The first part is added unless
# the marker says it was (>= 1), the second only with the whole state known and unless the
# marker says it was (2); the marker records what the counters hold. Returns the marker's value
# after the call, and -1 when the counters are not known (not even the budgets).
APPLY_SCRIPT = """
local whole = redis.call('EXISTS', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 0
if not whole and redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local done = tonumber(redis.call('GET', KEYS[4]) or '0')
local level, first = 1, 4 + tonumber(ARGV[2])
if whole then level = 2 end
if done >= level then return done end
local from, to = 5, first
if done >= 1 then from = first + 1 end
if whole then to = #KEYS end
for i = from, to do
  redis.call('INCRBY', KEYS[i], ARGV[2 * i - 7])
  local ttl = tonumber(ARGV[2 * i - 6])
  if ttl > 0 and redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
redis.call('SET', KEYS[4], level, 'EX', ARGV[1])
return level
"""
# KEYS: the keys a heal holds, its claim first; ARGV[1]: their ttl, ARGV[2]: the heal's token.
# While the claim holds this heal's token, sets it again and the others (value 1); returns 0
# when it does not (lost with the store's state, or another heal's since).
HOLD_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
for i = 2, #KEYS do redis.call('SET', KEYS[i], 1, 'EX', ARGV[1]) end
return 1
"""
# KEYS: epoch, healing, budgets known; ARGV[1]: the heal's token ('': no claim to check). Sets
# the epoch and deletes the other two; returns 0 (nothing done) when the claim must hold the
# token and does not.
KNOWN_SCRIPT = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 1)
redis.call('DEL', KEYS[2], KEYS[3])
return 1
"""
# KEYS: healing, budgets known; ARGV[1]: the heal's token. Deletes both while the claim holds
# the token (a heal that stops lets the next one start at once, and leaves another's keys be).
RELEASE_HEAL_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
"""

# KEYS: the keys to raise, then the markers to set; ARGV[1]: how many keys to raise, then value
# and ttl (0: none) for each key. A key is raised to its value when it holds less (keeping its
# expiry, or taking the given one when it has none), never lowered; a marker is set with its
# ttl. Returns how many keys were raised.
RAISE_SCRIPT = """
local n = tonumber(ARGV[1])
local raised = 0
for i = 1, #KEYS do
  local value, ttl = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  if i > n then
    redis.call('SET', KEYS[i], value, 'EX', ttl)
  elseif tonumber(value) > tonumber(redis.call('GET', KEYS[i]) or '0') then
    redis.call('SET', KEYS[i], value, 'KEEPTTL')
    if ttl > 0 and redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ttl) end
    raised = raised + 1
  end
end
return raised
"""
RAISE_CHUNK = 5_000  # keys per script: Redis runs one script at a time, decisions wait for it
# KEYS: the keys to set; ARGV[1]: their ttl (0: none), then each key's value.
SET_SCRIPT = """
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  if ttl > 0 then
    redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl)
  else
    redis.call('SET', KEYS[i], ARGV[i + 1])
  end
end
return #KEYS
"""

Method = TypeVar("Method", bound=Callable[..., Any])


def _unavailable_when_unreachable(method: Method) -> Method:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except UNREACHABLE as error:
            raise DeliveryStateUnavailable(f"Redis does not answer: {error}") from error
        except redis.exceptions.BusyLoadingError as error:  # a restart loading its data
            raise DeliveryStateUnavailable("Redis is loading its data.") from error

    return wrapper  # type: ignore[return-value]


class RedisCounters:
    shared = True

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=2,
            socket_connect_timeout=1,
            health_check_interval=HEALTH_CHECK_SECONDS,
            retry=Retry(NoBackoff(), 1),
            retry_on_error=list(UNREACHABLE),
        )
        self._reserve = self._redis.register_script(RESERVE_SCRIPT)
        self._apply = self._redis.register_script(APPLY_SCRIPT)
        self._hold = self._redis.register_script(HOLD_SCRIPT)
        self._mark_known = self._redis.register_script(KNOWN_SCRIPT)
        self._release_heal = self._redis.register_script(RELEASE_HEAL_SCRIPT)
        self._raise = self._redis.register_script(RAISE_SCRIPT)
        self._set = self._redis.register_script(SET_SCRIPT)
        self.full = FullMemory()
        self._guard = [keys.epoch(), keys.healing()]
        self._budgets_guard = [*self._guard, keys.budgets_known()]
        self._local = threading.local()  # each thread's connection for reservations
        self._packed_read: tuple[Sequence[str], bytes] | None = None

    def _run_scripts(self, calls: Sequence[tuple[Any, list[str], list]]) -> list:
        """EVALSHA of each (script, keys, args) in one pipeline (a registered Script object
        called on a pipeline asks SCRIPT EXISTS first, one more round trip); after a restart
        that lost the scripts, they are loaded and the calls sent again."""
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            for script, script_keys, args in calls:
                pipe.evalsha(script.sha, len(script_keys), *script_keys, *args)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                for script in {script for script, _, _ in calls}:
                    self._redis.script_load(script.script)
        raise AssertionError("unreachable")

    @_unavailable_when_unreachable
    def get_many(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        if len(keys) < PACKED_READ_SIZE:
            return [int(value or 0) for value in self._redis.mget(keys)]
        # The state refresh reads the same ten thousand keys each second (one list, kept by
        # the caller): packing their MGET through redis-py was a fifth of the refresh.
        packed = self._packed_read
        if packed is None or packed[0] is not keys:
            packed = self._packed_read = (keys, _packed_ascii(["MGET", *keys]))
        (values,) = self._send(packed[1], 1)
        if isinstance(values, Exception):
            raise values
        return [int(value or 0) for value in values]

    @_unavailable_when_unreachable
    def add_many(self, bumps: Sequence[Bump]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for bump in bumps:
            pipe.incrby(bump.key, bump.amount)
            if bump.ttl:
                pipe.expire(bump.key, bump.ttl, nx=True)
        pipe.execute()

    @_unavailable_when_unreachable
    def reserve(self, groups: Sequence[Sequence[Bump]], *, known: str | None = None) -> list[bool]:
        """One EVALSHA of RESERVE_SCRIPT for all the groups, written to this thread's own
        connection (without redis-py's command packing: packing each argument through it cost
        about a third of a decision's CPU, and one reply per group another tenth). Known
        budgets are enough (a heal's first phase: every reservation is bounded by its own
        limits, or holds none), with the `known` marker present when given (the viewer's caps
        read: ViewerStateUnknown without it)."""
        if not groups:
            return []
        guard = [*self._budgets_guard, known or keys.budgets_known()]
        command = _reserve_command(self._reserve.sha, guard, groups)
        (result,) = self._send(command, 1)
        if isinstance(result, redis.exceptions.NoScriptError):
            # Redis restarted or flushed its scripts: nothing of this pod was reserved.
            self._redis.script_load(RESERVE_SCRIPT)
            return self.reserve(groups, known=known)
        if isinstance(result, Exception):
            raise result
        if result == 0:
            raise DeliveryStateUnavailable("The counters are not known yet.", lost=True)
        if result == -1:
            raise ViewerStateUnknown()
        for group, outcome in zip(groups, result, strict=True):
            if outcome < 0:
                self.full.remember(group[-outcome - 1])
        return [outcome == 1 for outcome in result]

    def _send(self, payload: bytes, replies: int) -> list:
        """Send packed commands on this thread's own connection and read their `replies`, each
        a value or the ResponseError it answered (every reply is read, so the connection is
        clean for the next send). The pool's checkout and return cost a tenth of a decision;
        a server thread sends one reservation at a time. A connection that fails before its
        first reply (one the server closed: a restart, an idle timeout) is made again and the
        commands sent once more, as the pool's retry does for the other commands."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._redis.connection_pool.make_connection()
        for attempt in (1, 2):
            results: list = []
            try:
                connection.send_packed_command([payload])
                for _ in range(replies):
                    try:
                        results.append(connection.read_response(disconnect_on_error=False))
                    except redis.exceptions.ResponseError as error:
                        results.append(error)
                return results
            except redis.exceptions.ConnectionError:
                connection.disconnect()  # made again at the next send
                if results or attempt == 2:
                    raise
            except BaseException:
                connection.disconnect()
                raise
        raise AssertionError("unreachable")

    @_unavailable_when_unreachable
    def apply_once(
        self, marker: str, bumps: Sequence[Bump], viewer_bumps: Sequence[Bump] = ()
    ) -> bool:
        """Add what `marker` says was not added yet, in one step: `bumps` (a backlog entry's
        effects on every key but the viewers') once the budgets are known, `viewer_bumps` once
        the whole state is (a heal's second phase writes the viewers' keys). True when the
        counters hold both parts now (added by this call or before), False when
        `viewer_bumps` wait for the epoch."""
        args: list[int] = [APPLIED_TTL, len(bumps)]
        for bump in [*bumps, *viewer_bumps]:
            args += [bump.amount, bump.ttl or 0]
        script_keys = [*self._budgets_guard, marker]
        script_keys += [bump.key for bump in [*bumps, *viewer_bumps]]
        (result,) = self._run_scripts([(self._apply, script_keys, args)])
        if result < 0:
            raise DeliveryStateUnavailable("The counters are not known yet.", lost=True)
        return result == keys.APPLIED_ALL

    @_unavailable_when_unreachable
    def state_known(self) -> bool:
        epoch, healing = self._redis.mget(self._guard)
        return epoch is not None and healing is None

    @_unavailable_when_unreachable
    def mark_known(self, *, claim: int | None = None) -> None:
        """Set the epoch and forget the heal's keys; with `claim` (a heal's token), only while
        the healing key holds it: a Redis that restarted empty during the heal lost it, or
        another heal took it since, and the store must not be marked known over that
        (DeliveryStateUnavailable, lost)."""
        script_keys = [keys.epoch(), keys.healing(), keys.budgets_known()]
        token = "" if claim is None else str(claim)
        (done,) = self._run_scripts([(self._mark_known, script_keys, [token])])
        if not done:
            raise DeliveryStateUnavailable("The heal's claim was lost.", lost=True)

    @_unavailable_when_unreachable
    def hold(self, held: Sequence[str], ttl: float, *, token: int = 1) -> None:
        """Set each key of `held` for `ttl` seconds while the first, a heal's claim, holds the
        heal's `token`: a heal renews its keys, and says the budgets are known, with it. A
        Redis that restarted empty since lost the claim, and another heal may have claimed it
        since (DeliveryStateUnavailable, lost): set again, the keys would say a store holds
        what this heal wrote."""
        (done,) = self._run_scripts([(self._hold, list(held), [int(ttl), str(token)])])
        if not done:
            raise DeliveryStateUnavailable("The heal's claim was lost.", lost=True)

    @_unavailable_when_unreachable
    def release(self, key: str) -> None:
        self._redis.delete(key)

    @_unavailable_when_unreachable
    def release_heal(self, *, claim: int) -> None:
        """Delete the healing claim and budgets known while the claim holds `claim` (a heal's
        token): a heal that stops leaves another heal's keys be."""
        script_keys = [keys.healing(), keys.budgets_known()]
        self._run_scripts([(self._release_heal, script_keys, [str(claim)])])

    @_unavailable_when_unreachable
    def set_many(self, values: Mapping[str, int], ttl: int | None = None) -> None:
        """SET of each key; many keys (a heal's fatigue buckets) RAISE_CHUNK a script, packed
        here (redis-py's pipeline packs and parses each command in Python)."""
        if len(values) < PACKED_READ_SIZE:
            pipe = self._redis.pipeline(transaction=False)
            for key, value in values.items():
                pipe.set(key, value, ex=ttl)
            pipe.execute()
            return
        pairs = list(values.items())
        for start in range(0, len(pairs), RAISE_CHUNK):
            chunk = pairs[start : start + RAISE_CHUNK]
            names = [key for key, _ in chunk]
            self._eval_packed(self._set, names, [str(ttl or 0), *(str(v) for _, v in chunk)])

    @_unavailable_when_unreachable
    def raise_many(self, floors: Sequence[Bump], *, marker: Bump | None = None) -> None:
        """Raise each key to at least its bump's amount (a new key takes the bump's ttl; a key
        holding more keeps it: a reservation made meanwhile is never undone), then set
        `marker`; with a marker, in one script (a viewer's caps and their marker as one step),
        else RAISE_CHUNK keys a script, packed here (a heal's millions of cap keys)."""
        chunks = [
            floors[start : start + RAISE_CHUNK] for start in range(0, len(floors), RAISE_CHUNK)
        ]
        if marker is not None:
            chunks = [floors]
        for number, chunk in enumerate(chunks, start=1):
            markers = [marker] if marker is not None and number == len(chunks) else []
            args = [str(len(chunk))]
            for bump in [*chunk, *markers]:
                args += [str(bump.amount), str(bump.ttl or 0)]
            self._eval_packed(self._raise, [bump.key for bump in [*chunk, *markers]], args)

    def _eval_packed(self, script: Any, names: Sequence[str], args: Sequence[str]) -> Any:
        """EVALSHA of a registered script, packed here and sent on this thread's connection
        (loaded first when Redis lost its scripts)."""
        command = _packed_ascii(["EVALSHA", script.sha, str(len(names)), *names, *args])
        (result,) = self._send(command, 1)
        if isinstance(result, redis.exceptions.NoScriptError):
            self._redis.script_load(script.script)
            (result,) = self._send(command, 1)
        if isinstance(result, Exception):
            raise result
        return result

    @_unavailable_when_unreachable
    def claim(self, key: str, ttl: float, *, token: int = 1) -> bool:
        """True for the first caller until `ttl` seconds pass (a lock for periodic work, a
        heal's claim), the key holding `token` meanwhile."""
        return bool(self._redis.set(key, token, nx=True, px=int(ttl * 1000)))

    @_unavailable_when_unreachable
    def delete_prefix(self, prefix: str) -> None:
        batch = []
        for key in self._redis.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self._redis.delete(*batch)
                batch = []
        if batch:
            self._redis.delete(*batch)

    @_unavailable_when_unreachable
    def claim_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """`claim` of each key, in one round trip."""
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, 1, nx=True, px=int(ttl * 1000))
        return [bool(result) for result in pipe.execute()]


def _reserve_command(sha: str, guard: Sequence[str], groups: Sequence[Sequence[Bump]]) -> bytes:
    """EVALSHA of the reserve script for `groups` (after the guard keys), in the Redis
    protocol: each key written as a bulk string as it is met (as `_packed_ascii` would
    write the whole list, in one pass instead of two)."""
    spec: list[str] = []
    names = [f"${len(name)}\r\n{name}\r\n" for name in guard]
    for group in groups:
        spec.append(str(len(group)))
        for key, amount, ttl, limit in group:
            names.append(f"${len(key)}\r\n{key}\r\n")
            spec.append(f"{amount} {ttl or 0} {-1 if limit is None else limit}")
    count = str(len(names))
    limits = " ".join(spec)
    text = "".join(
        [
            f"*{len(names) + 4}\r\n$7\r\nEVALSHA\r\n${len(sha)}\r\n{sha}\r\n"
            f"${len(count)}\r\n{count}\r\n",
            *names,
            f"${len(limits)}\r\n{limits}\r\n",
        ]
    )
    if text.isascii():
        return text.encode()
    # A key that is not ASCII (none is today): a bulk string's length counts its bytes.
    keys = [*guard, *(bump.key for group in groups for bump in group)]
    return _packed(["EVALSHA", sha, count, *keys, limits])


def _packed_ascii(args: list[str]) -> bytes:
    """`_packed` for arguments that are strings, in one pass when they are all ASCII (keys are
    ids, dates and fixed words), where a bulk string's length is its number of characters."""
    text = "".join([f"*{len(args)}\r\n", *[f"${len(arg)}\r\n{arg}\r\n" for arg in args]])
    if text.isascii():
        return text.encode()
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
