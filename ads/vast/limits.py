"""Rate limits of the ad tags: requests per minute per player id and per client address,
counted in the shared delivery counters (Redis in the full stack), so every process enforces
one total.

A round trip per request would cost the tag a third of a decision's CPU, so each process counts
in memory and adds its counts to the shared counters at most every SYNC_SECONDS, reading back
the totals of the keys it sent (two round trips for all of them). A request is refused when the
shared total last read, plus what this process has not sent yet, would pass a limit: with N
processes a limit may be passed by what the others counted since their last sync (at most
SYNC_SECONDS of their traffic), a few requests, never a multiple of the limit."""

from __future__ import annotations

import threading
import time

from django.conf import settings

from ads.delivery import keys
from ads.delivery.counters import Bump, DeliveryStateUnavailable, counters
from ads.services.players import PlayerState

SYNC_SECONDS = 0.5


class TagLimiter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute = -1
        self._unsent: dict[str, int] = {}
        self._shared: dict[str, int] = {}  # the keys' totals when last read, this minute
        self._synced_at = 0.0

    def seconds_over(self, player: PlayerState, address: str, now: float | None = None):
        """None when this request is within the player's and the address's limits for the
        minute (and it is counted); else the seconds until the next minute."""
        now = time.time() if now is None else now
        minute = int(now // 60)
        limited = (
            (keys.tag_requests_by_player(player.public_id, minute), player.requests_per_minute),
            (
                keys.tag_requests_by_address(address, minute),
                settings.VAST_REQUESTS_PER_ADDRESS_PER_MINUTE,
            ),
        )
        with self._lock:
            if minute != self._minute:  # a new minute: new keys, the old counts are moot
                self._minute, self._unsent, self._shared = minute, {}, {}
            for key, limit in limited:
                if self._shared.get(key, 0) + self._unsent.get(key, 0) + 1 > limit:
                    return 60 - int(now % 60)
            for key, _ in limited:
                self._unsent[key] = self._unsent.get(key, 0) + 1
            batch = None
            if now - self._synced_at >= SYNC_SECONDS:
                batch, self._unsent, self._synced_at = self._unsent, {}, now
        if batch:
            self._sync(batch, minute)
        return None

    def _sync(self, batch: dict[str, int], minute: int) -> None:
        """Add this process's counts to the shared ones and read back their totals. With the
        counters out of reach (Redis down), the counts wait for the next sync and the process
        limits on what it counted itself: a tag answers (degraded, as the decision does),
        never a 500."""
        store = counters()
        ttl = keys.lifetime(keys.tag_requests_by_player)
        sent = list(batch)
        try:
            store.add_many([Bump(key, batch[key], ttl) for key in sent])
        except DeliveryStateUnavailable:
            with self._lock:
                if minute == self._minute:
                    for key, count in batch.items():
                        self._unsent[key] = self._unsent.get(key, 0) + count
            return
        try:
            totals = store.get_many(sent)
        except DeliveryStateUnavailable:  # added: counted in the shared totals when next read
            with self._lock:
                if minute == self._minute:
                    for key, count in batch.items():
                        self._shared[key] = self._shared.get(key, 0) + count
            return
        with self._lock:
            if minute == self._minute:
                self._shared.update(zip(sent, totals, strict=True))

    def reset(self) -> None:
        with self._lock:
            self._minute, self._unsent, self._shared, self._synced_at = -1, {}, {}, 0.0


limiter = TagLimiter()
