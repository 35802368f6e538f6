"""The writer thread of a scan: batches, flush, errors handed back to the scan."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import scanner.recording
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


def test_the_scan_waits_while_too_many_verdicts_wait_for_the_writer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    written: list[str] = []

    def slow_store(engine: Any, run_id: int, outcomes: list[AccountOutcome]) -> None:
        release.wait(10)
        written.extend(o.account.id for o in outcomes)

    monkeypatch.setattr(storage.repository, "record_outcomes", slow_store)
    monkeypatch.setattr(scanner.recording, "MAX_PENDING_VERDICTS", 10)
    monkeypatch.setattr(scanner.recording, "BATCH_SECONDS", 0.05)
    recorder = BackgroundRecorder(engine=None, run_id=7)  # type: ignore[arg-type]
    added: list[int] = []

    def scan() -> None:
        for number in range(5):
            # 4 verdicts each: after the third account, 12 wait for the writer
            recorder.add(
                AccountOutcome(Account(id=f"{number:012d}", name="a"), "ok", results=[None] * 4)
            )  # type: ignore[list-item]
            added.append(number)

    scanning = threading.Thread(target=scan)
    scanning.start()
    time.sleep(0.5)
    assert added == [0, 1, 2]  # the fourth add waits: the writer is stuck on the first three
    assert recorder.pending_verdicts == 12
    release.set()
    scanning.join(10)
    recorder.flush()
    recorder.stop()
    assert added == [0, 1, 2, 3, 4]
    assert written == [f"{n:012d}" for n in range(5)]
    assert recorder.pending_verdicts == 0
