"""Decision latency, recorded cheaply: each process counts its decisions in fixed buckets and
adds them to per-minute counters at most once a second (one pipeline), so the executive
dashboard can read p50/p99 over the last minutes without a write per decision."""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from datetime import datetime, timedelta

from django.utils import timezone

from ads.delivery import keys
from ads.delivery.counters import Bump, DeliveryStateUnavailable, counters

# Upper bounds of the buckets, in milliseconds; the last one catches everything slower.
BUCKETS_MS = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 50, 100, 250, 1000, 1e9)
FLUSH_SECONDS = 1.0


class LatencyRecorder:
    def __init__(self) -> None:
        self._counts = [0] * len(BUCKETS_MS)
        self._flushed_at = time.monotonic()
        self._lock = threading.Lock()

    def record(self, milliseconds: float, *, at: datetime | None = None) -> None:
        bucket = bisect.bisect_left(BUCKETS_MS, milliseconds)
        with self._lock:
            self._counts[bucket] += 1
            now = time.monotonic()
            if now - self._flushed_at < FLUSH_SECONDS:
                return
            counts, self._counts = self._counts, [0] * len(BUCKETS_MS)
            self._flushed_at = now
        self.flush(counts, at or timezone.now())

    def flush(self, counts: list[int], at: datetime) -> None:
        """Add the counts to the shared histograms; with the counters out of reach, that
        second's counts are dropped (statistics: never worth failing a decision for)."""
        with contextlib.suppress(DeliveryStateUnavailable):
            counters().add_many(
                [
                    Bump(keys.latency(at, bucket), count, keys.LATENCY_TTL)
                    for bucket, count in enumerate(counts)
                    if count
                ]
            )

    def reset(self) -> None:
        with self._lock:
            self._counts = [0] * len(BUCKETS_MS)

    def flush_now(self, at: datetime | None = None) -> None:
        with self._lock:
            counts, self._counts = self._counts, [0] * len(BUCKETS_MS)
            self._flushed_at = time.monotonic()
        self.flush(counts, at or timezone.now())


recorder = LatencyRecorder()


def latency_percentiles(*, minutes: int = 5, at: datetime | None = None) -> dict:
    """p50 and p99 (the upper bound of the bucket that holds them) over the last minutes."""
    at = at or timezone.now()
    moments = [at - timedelta(minutes=offset) for offset in range(minutes)]
    read = [keys.latency(moment, bucket) for moment in moments for bucket in range(len(BUCKETS_MS))]
    values = counters().get_many(read)
    counts = [
        sum(values[m * len(BUCKETS_MS) + bucket] for m in range(minutes))
        for bucket in range(len(BUCKETS_MS))
    ]
    total = sum(counts)

    def percentile(share: float) -> float | None:
        if not total:
            return None
        running = 0
        for bucket, count in enumerate(counts):
            running += count
            if running >= share * total:
                return BUCKETS_MS[bucket]
        return BUCKETS_MS[-1]

    return {"decisions": total, "p50_ms": percentile(0.50), "p99_ms": percentile(0.99)}
