"""The cyclic garbage collector's pace during a scan.

A scan allocates millions of short-lived objects (parsed answers, scenarios, verdicts)
while it holds a large, slowly growing heap (compiled policies, the organization,
accounts waiting for the writer). With Python's default first threshold (700
allocations) young objects that would die a moment later survive into the older
generations, and every few hundred of those collections a full one walks the whole heap:
about a fifth of the scanner's CPU time (benchmarks/README.md, "Where the scanner's CPU
goes"). A higher first threshold lets them die young; reference counting still frees
everything that is not part of a cycle at once, so memory grows little.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SCAN_GEN0_THRESHOLD = 20_000

_lock = threading.Lock()
_active = 0
_before: tuple[int, int, int] | None = None


@contextmanager
def scan_collection_pace() -> Iterator[None]:
    """The first generation's threshold at SCAN_GEN0_THRESHOLD while any scan of this
    process runs (scans may overlap: the last one to end puts the previous pace back);
    never lowered when it is already higher."""
    global _active, _before
    with _lock:
        if _active == 0:
            _before = gc.get_threshold()
            if _before[0] < SCAN_GEN0_THRESHOLD:
                gc.set_threshold(SCAN_GEN0_THRESHOLD, *_before[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _before is not None:
                gc.set_threshold(*_before)
                _before = None
