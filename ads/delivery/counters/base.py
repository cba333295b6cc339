"""What every counters backend shares: the bump a caller asks for, and the process's memory of
reservations lately refused at their limit."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

MICROS = 1_000_000
APPLIED_TTL = 3 * 86400  # how long a store remembers a backlog entry it applied
FULL_MEMORY_SECONDS = 60.0
FULL_MEMORY_SIZE = 200_000  # entries before expired ones are swept


class Bump(NamedTuple):
    """Add `amount` to `key`; with `limit`, only if the result stays ≤ limit. A NamedTuple
    rather than a frozen dataclass, which takes twice as long to make (a decision makes one
    for each budget and cap of every slot it reserves)."""

    key: str
    amount: int
    ttl: int | None = None
    limit: int | None = None


class FullMemory:
    """Bumps recently refused because their key was at its limit (see the package docstring).
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


class DeliveryStateUnavailable(Exception):
    """The counters cannot be used now, so nothing may be reserved against them: the store
    does not answer (`lost` False: Redis down or restarting), or it answers but lost its state
    and has not been healed yet (`lost` True: Redis restarted empty, or a heal is running).
    Decisions answer degraded; stored events keep their counter effects in the backlog."""

    def __init__(self, message: str, *, lost: bool = False) -> None:
        super().__init__(message)
        self.lost = lost


class ViewerStateUnknown(DeliveryStateUnavailable):
    """Between a heal's phases: the budgets are known, but not yet this viewer's frequency caps
    (`keys.viewer_caps_known` is missing). Nothing was reserved; read the viewer's counts
    (`ads.services.viewer_caps_load`) and reserve again."""

    def __init__(self, message: str = "The viewer's frequency caps are not known yet.") -> None:
        super().__init__(message, lost=True)
