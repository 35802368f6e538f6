"""Writes that wait out a database restart instead of losing what a scan found.

A scan holds verdicts in memory only until their batch is written. If PostgreSQL is
restarted (failover, upgrade, a node drained) while a batch is written, the write is
retried on a new connection for up to WRITE_RETRY_SECONDS; the writes are idempotent
upserts, so a retry never records anything twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_RETRY_SECONDS = 120.0
_FIRST_WAIT, _MAX_WAIT = 0.5, 5.0


def _connection_lost(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def while_database_returns(
    write: Callable[[], T],
    *,
    what: str,
    seconds: float = WRITE_RETRY_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`write()`, retried while the database is unreachable, at most `seconds` long."""
    give_up = clock() + seconds
    wait = _FIRST_WAIT
    while True:
        try:
            return write()
        except DBAPIError as exc:
            if not _connection_lost(exc) or clock() + wait > give_up:
                raise
            log.warning(
                "database unreachable, retrying",
                extra={"write": what, "wait_s": wait, "error": type(exc.orig).__name__},
            )
            sleep(wait)
            wait = min(_MAX_WAIT, wait * 2)
