"""The in-memory backend: a locked dictionary, for one process (the test suite's default)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from ads.delivery import keys
from ads.delivery.counters.base import (
    APPLIED_TTL,
    Bump,
    DeliveryStateUnavailable,
    FullMemory,
    ViewerStateUnknown,
)


class LocalCounters:
    """Counters of this process only: they die with it."""

    shared = False

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float | None]] = {}
        self._lock = threading.Lock()
        self.full = FullMemory()
        # A new process's memory holds nothing to lose: known from the start (forgetting the
        # keys, as the tests do to play a Redis restart, forgets this too).
        self._values[keys.epoch()] = (1, None)

    def _known(self, now: float) -> bool:
        """The whole state is known (the epoch set, no heal running)."""
        return bool(self._get(keys.epoch(), now)) and not self._get(keys.healing(), now)

    def _check_budgets_known(self, now: float) -> bool:
        """The whole state is known (True), or the budgets (False: a heal's first phase is
        written); else DeliveryStateUnavailable."""
        if self._known(now):
            return True
        if not self._get(keys.budgets_known(), now):
            raise DeliveryStateUnavailable("The counters are being rebuilt.", lost=True)
        return False

    def state_known(self) -> bool:
        with self._lock:
            return self._known(time.monotonic())

    def mark_known(self, *, claim: int | None = None) -> None:
        """Set the epoch (and forget the heal's keys); with `claim` (a heal's token), only
        while the healing key holds it (see RedisCounters.mark_known)."""
        with self._lock:
            if claim is not None and self._get(keys.healing(), time.monotonic()) != claim:
                raise DeliveryStateUnavailable("The heal's claim was lost.", lost=True)
            self._values[keys.epoch()] = (1, None)
            self._values.pop(keys.healing(), None)
            self._values.pop(keys.budgets_known(), None)

    def release(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    def release_heal(self, *, claim: int) -> None:
        """Forget the healing claim and budgets known while the claim holds `claim` (see
        RedisCounters.release_heal)."""
        with self._lock:
            if self._get(keys.healing(), time.monotonic()) == claim:
                self._values.pop(keys.healing(), None)
                self._values.pop(keys.budgets_known(), None)

    def hold(self, held: Sequence[str], ttl: float, *, token: int = 1) -> None:
        """Set each key of `held` for `ttl` seconds while the first holds the heal's `token`
        (see RedisCounters.hold)."""
        now = time.monotonic()
        with self._lock:
            if self._get(held[0], now) != token:
                raise DeliveryStateUnavailable("The heal's claim was lost.", lost=True)
            self._values[held[0]] = (token, now + ttl)
            for key in held[1:]:
                self._values[key] = (1, now + ttl)

    def apply_once(
        self, marker: str, bumps: Sequence[Bump], viewer_bumps: Sequence[Bump] = ()
    ) -> bool:
        """Add what `marker` says was not added yet, in one step (see
        RedisCounters.apply_once): True when the counters hold both parts now."""
        now = time.monotonic()
        with self._lock:
            whole = self._check_budgets_known(now)
            done = self._get(marker, now)
            level = keys.APPLIED_ALL if whole else keys.APPLIED_BUDGETS
            if done >= level:
                return done == keys.APPLIED_ALL
            if done < keys.APPLIED_BUDGETS:
                self._add(bumps, now)
            if whole:
                self._add(viewer_bumps, now)
            self._values[marker] = (level, now + APPLIED_TTL)
            return level == keys.APPLIED_ALL

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
        with self._lock:
            self._add(bumps, time.monotonic())

    def _add(self, bumps: Sequence[Bump], now: float) -> None:
        for bump in bumps:
            # Read again: a key may come twice (as INCRBY would add both).
            value = self._get(bump.key, now)
            expires = self._values.get(bump.key, (0, None))[1]
            if bump.ttl is not None and expires is None:
                expires = now + bump.ttl
            self._values[bump.key] = (value + bump.amount, expires)

    def reserve(self, groups: Sequence[Sequence[Bump]], *, known: str | None = None) -> list[bool]:
        """Each group whole or not at all; known budgets are enough, with the `known` marker
        present when given (see RedisCounters.reserve)."""
        now = time.monotonic()
        results = []
        with self._lock:
            whole = self._check_budgets_known(now)
            if known is not None and not whole and not self._get(known, now):
                raise ViewerStateUnknown()
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
                self._add(group, now)
                results.append(True)
        return results

    def set_many(self, values: Mapping[str, int], ttl: int | None = None) -> None:
        expires = time.monotonic() + ttl if ttl else None
        with self._lock:
            for key, value in values.items():
                self._values[key] = (value, expires)

    def raise_many(self, floors: Sequence[Bump], *, marker: Bump | None = None) -> None:
        """Raise each key to at least its bump's amount (a new key takes the bump's ttl; a key
        holding more keeps it), then set `marker`, all in one step (see
        RedisCounters.raise_many)."""
        now = time.monotonic()
        with self._lock:
            for bump in floors:
                value = self._get(bump.key, now)
                if bump.amount > value:
                    expires = self._values.get(bump.key, (0, None))[1]
                    if expires is None and bump.ttl:
                        expires = now + bump.ttl
                    self._values[bump.key] = (bump.amount, expires)
            if marker is not None:
                expires = now + marker.ttl if marker.ttl else None
                self._values[marker.key] = (marker.amount, expires)

    def claim(self, key: str, ttl: float, *, token: int = 1) -> bool:
        """True for the first caller until `ttl` seconds pass (a lock for periodic work, a
        heal's claim), the key holding `token` meanwhile."""
        now = time.monotonic()
        with self._lock:
            if self._get(key, now):
                return False
            self._values[key] = (token, now + ttl)
            return True

    def delete_prefix(self, prefix: str) -> None:
        with self._lock:
            for key in [key for key in self._values if key.startswith(prefix)]:
                del self._values[key]

    def claim_many(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """`claim` of each key, in one go."""
        return [self.claim(key, ttl) for key in keys]
