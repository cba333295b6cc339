"""The in-memory backend: a locked dictionary, for one process (the test suite's default)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from ads.delivery.counters.base import Bump, FullMemory


class LocalCounters:
    """Counters of this process only: they die with it."""

    shared = False

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
                for bump in group:
                    # Read again: a key may come twice in a group (as INCRBY would add both).
                    value = self._get(bump.key, now)
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
