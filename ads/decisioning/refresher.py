"""In a server process, a daemon thread keeps the index and the delivery state current, so
that no request pays for a rebuild (up to a second for a large index) or a state refresh
(tens of milliseconds), nor waits behind one. Requests still refresh by themselves if the
thread falls silent, and always for a decision time other than now (the simulator's)."""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections
from django.utils import timezone

from ads.decisioning.counters import counters
from ads.decisioning.index import index_holder
from ads.decisioning.state import REFRESH_SECONDS, state_holder

logger = logging.getLogger(__name__)
_started = threading.Event()


def _run() -> None:
    while True:
        started = time.monotonic()
        try:
            close_old_connections()
            index = index_holder.refresh()
            state_holder.refresh(index, counters(), timezone.now())
        except Exception:  # keep refreshing: a passing database or Redis error must not stop it
            logger.exception("The decision refresher failed; retrying.")
        time.sleep(max(0.0, REFRESH_SECONDS / 2 - (time.monotonic() - started)))


def start_refresher() -> None:
    """Start the thread once per process."""
    if _started.is_set():
        return
    _started.set()
    index_holder.background = True
    state_holder.background = True
    threading.Thread(target=_run, name="decision-refresher", daemon=True).start()
