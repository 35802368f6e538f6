"""Where the scanning process's memory goes during `scan_scale.py --memory-breakdown`.

Three views, printed after the scan:

- a time line sampled every few seconds: accounts finished, RSS (/proc/self/status),
  the Python heap as tracemalloc sees it, glibc malloc's own figures (mallinfo2: bytes
  in use, free bytes kept, arenas) and the thread count. RSS minus the traced heap is
  what Python's allocators and glibc keep beyond live objects (fragmentation, free
  lists, thread stacks, the interpreter itself);
- tracemalloc snapshots when the walk is done, at half the accounts and at the end (the
  report still alive): the largest allocation sites, and what grew between half and end
  (what grows with the accounts scanned, not with time alone);
- a census of the structures that could grow with the organization: the organization
  snapshot, the per-account outcomes kept for the report, the policy engine's caches,
  the idle clients.

tracemalloc slows the scan (about 2x) and adds its own memory (not in the traced
figures, but in RSS); `--memory-breakdown=light` samples RSS and malloc only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MB = 1 << 20
SAMPLE_SECONDS = 5.0
TOP_SITES = 25


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _MallInfo2
    libc.fdopen.restype = ctypes.c_void_p
    libc.fdopen.argtypes = [ctypes.c_int, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    return libc


LIBC = _libc()


def malloc_figures() -> dict[str, float]:
    """glibc's view: main-arena + other arenas' bytes in use and free bytes kept (MB),
    mmapped blocks (MB). Empty when glibc is not there."""
    if LIBC is None:
        return {}
    info = LIBC.mallinfo2()
    return {
        "malloc_in_use": (info.uordblks + info.hblkhd) / MB,
        "malloc_free_kept": info.fordblks / MB,
        "malloc_mmapped": info.hblkhd / MB,
    }


def malloc_arenas() -> int:
    """Number of malloc arenas (malloc_info's <heap nr=...> elements)."""
    if LIBC is None:
        return 0
    import tempfile

    with tempfile.TemporaryFile() as handle:
        stream = LIBC.fdopen(os.dup(handle.fileno()), b"w")
        LIBC.malloc_info(0, stream)
        LIBC.fclose(stream)
        handle.seek(0)
        return handle.read().count(b"<heap nr=")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Sample:
    seconds: float
    accounts: int
    rss: float
    traced: float
    malloc: dict[str, float]
    threads: int


@dataclass
class Breakdown:
    """Samples and snapshots of one scan; `progress` is the scan's progress callback."""

    trace: bool = True
    samples: list[Sample] = field(default_factory=list)
    snapshots: dict[str, tracemalloc.Snapshot] = field(default_factory=dict)
    done: int = 0
    total: int = 0
    _start: float = field(default_factory=time.perf_counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Breakdown:
        if self.trace:
            tracemalloc.start(1)
        self._thread = threading.Thread(target=self._sample_loop, name="memory", daemon=True)
        self._thread.start()
        return self

    def progress(self, done: int, total: int, _account: Any) -> None:
        self.done, self.total = done, total
        if total and done == 0:
            self.snap("walk done")
        elif total and done == total // 2:
            self.snap("half")

    def snap(self, name: str) -> None:
        self.sample()
        if self.trace and name not in self.snapshots:
            self.snapshots[name] = tracemalloc.take_snapshot()

    def sample(self) -> None:
        traced = tracemalloc.get_traced_memory()[0] / MB if self.trace else float("nan")
        self.samples.append(
            Sample(
                time.perf_counter() - self._start,
                self.done,
                rss_mb(),
                traced,
                malloc_figures(),
                threading.active_count(),
            )
        )

    def _sample_loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.sample()

    def finish(self) -> None:
        """The last sample and snapshot (call while the scan's report is still alive)."""
        self._stop.set()
        self.snap("end")


# --- what the scan holds -------------------------------------------------------------------


def deep_size(root: Any, seen: set[int] | None = None) -> int:
    """Bytes of `root` and everything it refers to that is not a module, class or
    function (shared objects counted once per `seen`)."""
    seen = set() if seen is None else seen
    skip = (type, type(sys), type(deep_size))
    total, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj, 0)
        stack.extend(gc.get_referents(obj))
    return total


def census(report: Any) -> dict[str, str]:
    """Sizes of the structures that could grow with the organization."""
    from scanner.policy import grammar

    outcomes = report.summary.outcomes
    rows = {
        "organization (report.organization)": _mb(deep_size(report.organization)),
        f"kept outcomes ({len(outcomes)})": _mb(deep_size(outcomes)),
        "compiled policies by content": _entries(grammar._by_content),
        "compiled policies by identity": _entries(grammar._by_identity),
    }
    for name, info in _lru_caches():
        rows[f"lru {name}"] = f"{info.currsize} of {info.maxsize} entries"
    return rows


def _entries(cache: dict[Any, Any]) -> str:
    return f"{len(cache)} entries, {_mb(deep_size(cache))}"


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


def _lru_caches() -> list[tuple[str, Any]]:
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("scanner"):
            continue
        for attr, value in vars(module).items():
            if callable(getattr(value, "cache_info", None)):
                found.append((f"{name}.{attr}", value.cache_info()))
    return sorted(found, key=lambda item: -item[1].currsize)


# --- printing -----------------------------------------------------------------------------


def print_breakdown(breakdown: Breakdown, report: Any) -> None:
    print("memory over time (MB):")
    print("      s  accounts     rss  traced  malloc-used  malloc-free  mmapped  threads")
    for sample in _thin(breakdown.samples, 30):
        malloc = sample.malloc
        print(
            f"  {sample.seconds:6.0f}  {sample.accounts:8d}  {sample.rss:6.0f}  "
            f"{sample.traced:6.0f}  {malloc.get('malloc_in_use', 0):11.0f}  "
            f"{malloc.get('malloc_free_kept', 0):11.0f}  {malloc.get('malloc_mmapped', 0):7.0f}  "
            f"{sample.threads:7d}"
        )
    print(f"malloc arenas: {malloc_arenas()}")
    for name, value in census(report).items():
        print(f"  {name:58s} {value}")
    _print_sites(breakdown.snapshots)
    last = breakdown.samples[-1] if breakdown.samples else None
    if last is not None:
        before = rss_mb()
        if LIBC is not None:
            LIBC.malloc_trim(0)
        print(f"RSS at the end {before:.0f} MB, after malloc_trim(0) {rss_mb():.0f} MB")


def _thin(samples: list[Sample], most: int) -> list[Sample]:
    step = max(1, len(samples) // most)
    return samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else [])


def _print_sites(snapshots: dict[str, tracemalloc.Snapshot]) -> None:
    if "end" not in snapshots:
        return
    end = snapshots["end"]
    print(f"largest allocation sites at the end (top {TOP_SITES}, MB, count):")
    for stat in end.statistics("lineno")[:TOP_SITES]:
        print(f"  {stat.size / MB:7.1f}  {stat.count:9d}  {stat.traceback[0]}")
    print("by file at the end (MB):")
    for name, size in _by_file(end).most_common(15):
        print(f"  {size / MB:7.1f}  {name}")
    for first in ("walk done", "half"):
        if first not in snapshots:
            continue
        print(f"grown from '{first}' to the end (top {TOP_SITES}, MB):")
        for stat in end.compare_to(snapshots[first], "lineno")[:TOP_SITES]:
            print(f"  {stat.size_diff / MB:+7.1f}  {stat.count_diff:+9d}  {stat.traceback[0]}")


def _by_file(snapshot: tracemalloc.Snapshot) -> Counter[str]:
    sizes: Counter[str] = Counter()
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        for marker in ("site-packages/", "/scanner/", "/storage/", "/lib/python3"):
            if marker in name:
                name = marker.strip("/") + ":" + name.split(marker, 1)[1]
                break
        sizes[name] += stat.size
    return sizes
