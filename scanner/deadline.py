"""The per-account time limit, as a deadline the worker thread carries.

The runner records an account that is still running at its limit as an error and moves
on; a Python thread cannot be killed, so the worker checks the deadline before every AWS
call (and caps backoff sleeps by it) and gives up at the next one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SETTING = "account_time_limit_seconds"

_local = threading.local()


class TimeLimitExceeded(Exception):
    """The account's time limit passed; the message names the limit and the setting."""


def limit_message(seconds: float) -> str:
    return (
        f"account time limit exceeded: not finished within {seconds:g} s "
        f"({SETTING}); the other accounts were scanned"
    )


@contextmanager
def account_deadline(seconds: float) -> Iterator[None]:
    """Work in this thread (AWS calls through the throttle) stops once `seconds` pass."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = (time.monotonic() + seconds, seconds)
    try:
        yield
    finally:
        _local.deadline = previous


@contextmanager
def paused() -> Iterator[None]:
    """Time spent in here (waiting for something that is not the account's doing, such
    as the rest of the organization's walk) does not count toward the account's limit."""
    current = getattr(_local, "deadline", None)
    started = time.monotonic()
    try:
        yield
    finally:
        if current is not None and getattr(_local, "deadline", None) == current:
            _local.deadline = (current[0] + time.monotonic() - started, current[1])


def remaining() -> float | None:
    """Seconds left for the current account (None: no limit in this thread)."""
    current = getattr(_local, "deadline", None)
    return None if current is None else current[0] - time.monotonic()


def check() -> None:
    """Raise TimeLimitExceeded when the current account's limit has passed."""
    current = getattr(_local, "deadline", None)
    if current is not None and time.monotonic() >= current[0]:
        raise TimeLimitExceeded(limit_message(current[1]))
