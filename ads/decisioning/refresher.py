"""In a server process, a daemon thread keeps the index and the delivery state current, so
that no request pays for a rebuild (up to a second for a large index) or a state refresh
(tens of milliseconds), nor waits behind one. Requests still refresh by themselves if the
thread falls silent, and always for a decision time other than now (the simulator's).

The same thread keeps the counters whole after a fault: it heals them when they lost their state
(starting the heal in a thread of its own, so that it goes on refreshing the state and applying
the backlog while the heal runs) and applies the backlog of counter effects that stored events
could not apply at once."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections, connections
from django.utils import timezone

from ads.decisioning.index import index_holder, warm_up
from ads.decisioning.state import REFRESH_SECONDS, state_holder
from ads.delivery.counters import DeliveryStateUnavailable, counters

logger = logging.getLogger(__name__)
_started = threading.Event()
SWITCH_INTERVAL_SECONDS = 0.0005
# The collector's young generation is walked whenever this many more container objects (lists,
# dicts, tuples, instances) are alive than at its last walk; CPython's default is 700. A batch
# of 1,000 events keeps ten thousand or so alive while it is processed (its parsed JSON, the
# events, claims, outcomes and columns), so under the default every batch in flight was walked
# a dozen times, promoted, and walked again by the older generations' collections (2-15 ms
# each): 4-6 ms of CPU per 1,000 events over HTTP (bench/decisions.py). A request's objects
# die by reference counting when it ends (the collector found a few dozen cyclic ones a second
# here), so a higher threshold costs no memory to speak of; it only stops walking live objects
# for nothing. 50,000 stays above two batches and a few hundred decisions in flight.
SERVER_GC_THRESHOLD = 50_000


def _run() -> None:
    while True:
        started = time.monotonic()
        try:
            close_old_connections()
            _keep_counters()
            index = index_holder.refresh()
            state_holder.refresh(index, counters(), timezone.now())
        except DeliveryStateUnavailable as error:  # Redis down: decisions answer degraded
            logger.warning("The decision refresher waits for the counters: %s", error)
        except Exception:  # keep refreshing: a passing database or Redis error must not stop it
            logger.exception("The decision refresher failed; retrying.")
        # Once a second, and just after each new minute (the live window and pacing move
        # then), so that requests at a minute's start find that minute's state ready.
        now = timezone.now()
        to_next_minute = 60 - now.second - now.microsecond / 1e6 + 0.001
        time.sleep(max(0.0, min(REFRESH_SECONDS - (time.monotonic() - started), to_next_minute)))


def _keep_counters() -> None:
    """Heal the counters if they lost their state (one process does, in a thread of its own;
    the others wait), and apply the backlog of stored events' counter effects that could not
    be applied at once: between a heal's phases too, in the healing process as in the others
    (their effects on budgets, a CPC line item's clicks, count from the heal's first phase)."""
    # Imported here: the services build on the engine.
    from ads.services.recovery import counters_backlog_drain, counters_heal

    global _healer
    try:
        known = counters().state_known()
    except DeliveryStateUnavailable:  # unreachable: nothing to heal or apply until it answers
        return
    if not known and (_healer is None or not _healer.is_alive()):
        _healer = threading.Thread(
            target=_closing_connections(counters_heal), name="counters-heal", daemon=True
        )
        _healer.start()
    counters_backlog_drain()


_healer: threading.Thread | None = None


def _closing_connections(work: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        except Exception:  # the next refresh starts another
            logger.exception("The counters' heal failed; retrying.")
        finally:
            connections.close_all()  # this thread's: it ends here

    return run


def start_refresher() -> None:
    """Start the thread once per process.

    A refresh holds the GIL for tens of milliseconds of Python; with the default switch
    interval (5 ms) a decision arriving meanwhile waits up to 5 ms at each hand-over. A
    shorter interval lets request threads in sooner (server processes only: this is where
    the thread runs)."""
    if _started.is_set():
        return
    _started.set()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    index_holder.background = True
    state_holder.background = True
    threading.Thread(target=_run, name="decision-refresher", daemon=True).start()


def server_start() -> None:
    """What a server process does once, after importing its views: build the decision index
    (whose freeze takes everything imported so far out of the garbage collector's sight), keep
    it and the delivery state current in a background thread, and collect young objects
    less often (SERVER_GC_THRESHOLD)."""
    warm_up()  # before the first request, not during it
    start_refresher()
    gc.set_threshold(SERVER_GC_THRESHOLD, *gc.get_threshold()[1:])
