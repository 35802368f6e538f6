"""The writer thread of a scan: batches, flush, errors handed back to the scan."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import storage.repository
from scanner.model import Account, AccountOutcome
from scanner.recording import BATCH_SIZE, BackgroundRecorder


def outcome(number: int) -> AccountOutcome:
    return AccountOutcome(Account(id=f"{number:012d}", name="a"), "ok")


class Store:
    def __init__(self, fail_after: int | None = None, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.fail_after = fail_after
        self.delay = delay
        self.threads: set[str] = set()

    def __call__(self, engine: Any, run_id: int, outcomes: list[AccountOutcome]) -> None:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise RuntimeError("database went away")
        self.batches.append([o.account.id for o in outcomes])


def test_everything_added_is_written_by_the_writer_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store(delay=0.05)  # slower than the scan: batches grow
    monkeypatch.setattr(storage.repository, "record_outcomes", store)
    recorder = BackgroundRecorder(engine=None, run_id=7)  # type: ignore[arg-type]
    started = time.perf_counter()
    for number in range(3 * BATCH_SIZE + 3):
        recorder.add(outcome(number))
    added_in = time.perf_counter() - started
    recorder.flush()
    recorder.stop()

    written = [account for batch in store.batches for account in batch]
    assert written == [f"{n:012d}" for n in range(3 * BATCH_SIZE + 3)]
    assert store.threads == {"scan-writer"}
    assert added_in < 0.05  # add() never waited for a write
    assert len(store.batches) < 3 * BATCH_SIZE + 3


def test_a_failed_write_is_raised_to_the_scan_and_keeps_its_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = Store(fail_after=1)
    monkeypatch.setattr(storage.repository, "record_outcomes", store)
    recorder = BackgroundRecorder(engine=None, run_id=7)  # type: ignore[arg-type]
    for number in range(BATCH_SIZE):
        recorder.add(outcome(number))
    recorder.flush()
    recorder.add(outcome(99))
    with pytest.raises(RuntimeError, match="database went away"):
        recorder.flush()
    with pytest.raises(RuntimeError):
        recorder.add(outcome(100))
    recorder.stop()
    assert len(store.batches) == 1
    assert [o.account.id for o in recorder.pending] == [f"{99:012d}"]
