"""Database work that survives a lost connection (a terminated backend, a restarted server):
the one place where the servers retry it, so that a client never sees the loss."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)
Result = TypeVar("Result")
# Pauses before the second and third attempts: a server that terminates its backends (a
# failover, an operator's pg_terminate_backend) often does it more than once in a second.
RETRY_PAUSES = (0.0, 0.2)
LOST = (OperationalError, InterfaceError)


def retried_on_lost_connection(work: Callable[[], Result]) -> Result:
    """Run `work`, and again on a new connection (up to len(RETRY_PAUSES) more times) if the
    database connection was lost. Only for idempotent work outside any transaction: an
    attempt may have committed before its connection died. Inside a transaction `work` runs
    once (the transaction is lost with the connection; its owner decides). Whether it runs
    inside one is asked only once the connection is lost: the `connection` proxy's lookups
    cost every decision a few microseconds."""
    for pause in RETRY_PAUSES:
        try:
            return work()
        except LOST:
            if connection.in_atomic_block:
                raise
            logger.warning("Database connection lost; retrying.", exc_info=True)
            connection.close()
            time.sleep(pause)
    return work()
