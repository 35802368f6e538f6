"""SIGTERM handled like Ctrl-C by the one-shot commands.

`timeout`, Kubernetes CronJobs and systemd stop a process with SIGTERM; without a handler
Python dies at once (exit 143) and the scan run stays "running". With this handler the
signal raises `Terminated`, a KeyboardInterrupt, so the same clean-up as Ctrl-C runs: what
finished is recorded and the run is closed as interrupted, naming the signal.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by a signal; str() is the signal's name."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block (main thread only), SIGTERM raises Terminated("SIGTERM")."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Terminated(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interruption(exc: BaseException) -> str:
    """How a KeyboardInterrupt is recorded: `interrupted (SIGTERM)` or `(Ctrl-C)`."""
    return f"interrupted ({exc})" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
