"""The writer process (scanner/writer_process.py): it stores exactly what the writer
thread stores, a child that dies mid-write loses nothing, a database outage mid-write is
waited out, errors come back to the scan, and the child never outlives the recorder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, text

from scanner import runner
from scanner.model import Account, AccountOutcome
from scanner.recording import BackgroundRecorder
from scanner.runner import run_scan
from scanner.writer_process import WriterProcess, WriterProcessDied, own_peak_rss_mb
from storage.repository import RunStateError, finish_run, record_outcomes, start_run

WAIT_SECONDS = 30.0


def new_run(engine: Engine) -> int:
    return start_run(
        engine,
        trigger="cli",
        host="test:1",
        config_fingerprint="abc123",
        simulator_source="engine",
        accounts_total=3,
    )


def plain_outcomes(count: int) -> list[AccountOutcome]:
    return [AccountOutcome(Account(id=f"{n:012d}", name=f"a{n}"), "ok") for n in range(count)]


def recorded_accounts(engine: Engine, run_id: int) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                text("SELECT account_id FROM account_scans WHERE scan_run_id = :r ORDER BY 1"),
                {"r": run_id},
            )
        )


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    give_up = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < give_up:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def lock_waiters(engine: Engine) -> list[int]:
    """Backends of this database waiting for a row lock (the writer, held back)."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"
                )
            )
        )


@contextmanager
def run_row_locked(engine: Engine, run_id: int) -> Iterator[None]:
    """Writers wait while the run's row is locked exclusively (as finish_run does)."""
    with engine.begin() as conn:
        conn.execute(text("SELECT id FROM scan_runs WHERE id = :r FOR UPDATE"), {"r": run_id})
        yield


def flushing(recorder: BackgroundRecorder) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def flush() -> None:
        try:
            recorder.flush()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=flush)
    thread.start()
    return thread, errors


# --- the same rows ------------------------------------------------------------------------

RESULT_COLUMNS = (
    'check_key, account_id, region, role_arn, "check", resource, status, decision, '
    "deciding_layer, policy, statement, simulator_decision, simulator_source, disagreement, "
    "message, remediation, evidence, failing_since"
)


def stored_rows(engine: Engine, run_id: int) -> dict[str, list[Any]]:
    with engine.connect() as conn:
        results = conn.execute(
            text(
                f"SELECT {RESULT_COLUMNS} FROM check_results WHERE scan_run_id = :r"
                " ORDER BY check_key"
            ),
            {"r": run_id},
        ).all()
        scans = conn.execute(
            text(
                "SELECT account_id, status, error, api_calls, evidence_fingerprint,"
                " carried_from_run_id, verdicts_decided_at FROM account_scans"
                " WHERE scan_run_id = :r ORDER BY account_id"
            ),
            {"r": run_id},
        ).all()
    return {"results": [tuple(row) for row in results], "scans": [tuple(row) for row in scans]}


def test_the_process_stores_exactly_what_record_outcomes_stores(seeded, db_engine) -> None:
    settings = seeded.settings
    report = run_scan(settings, engine=db_engine, sessions=seeded.sessions(settings))
    outcomes = report.summary.outcomes
    assert sum(len(o.results) for o in outcomes) == seeded.sandbox.check_count()

    through_process, direct = new_run(db_engine), new_run(db_engine)
    recorder = BackgroundRecorder(db_engine, through_process, separate_process=True)
    for outcome in outcomes:
        recorder.add(outcome)
    recorder.flush()
    recorder.stop()
    record_outcomes(db_engine, direct, outcomes)

    written, expected = stored_rows(db_engine, through_process), stored_rows(db_engine, direct)
    assert len(written["results"]) == seeded.sandbox.check_count()
    assert written == expected
    with db_engine.connect() as conn:
        documents = conn.scalar(text("SELECT count(*) FROM evidence_documents"))
    assert documents > 0  # the evidence refers to stored documents, found by both


def test_a_large_scan_records_through_the_writer_process(seeded, db_engine, monkeypatch) -> None:
    written: list[str] = []
    real_write = WriterProcess.write

    def spied(process: WriterProcess, run_id: int, outcomes: list[AccountOutcome]) -> None:
        real_write(process, run_id, outcomes)
        written.extend(o.account.id for o in outcomes)

    monkeypatch.setattr(runner, "WRITER_PROCESS_MIN_ACCOUNTS", 1)
    monkeypatch.setattr(WriterProcess, "write", spied)
    settings = seeded.settings

    report = run_scan(settings, engine=db_engine, sessions=seeded.sessions(settings))

    accounts = sorted(a.account_id for a in seeded.sandbox.accounts)
    assert sorted(written) == accounts
    assert recorded_accounts(db_engine, report.run_id) == accounts
    assert report.totals.checks_total == seeded.sandbox.check_count()


# --- nothing lost ----------------------------------------------------------------------


def test_a_writer_process_killed_mid_write_loses_no_account(db_engine) -> None:
    run_id = new_run(db_engine)
    recorder = BackgroundRecorder(db_engine, run_id, separate_process=True)
    assert recorder.process is not None
    with run_row_locked(db_engine, run_id):
        for outcome in plain_outcomes(3):
            recorder.add(outcome)
        thread, errors = flushing(recorder)
        wait_for(lambda: lock_waiters(db_engine), "the writer to wait for the run's row")
        first = recorder.process.process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: recorder.process.process not in (None, first), "a new writer process")
    thread.join(WAIT_SECONDS)
    recorder.stop()

    assert errors == []
    assert first.poll() == -signal.SIGKILL
    assert recorder.process.figures.children == 2
    assert recorded_accounts(db_engine, run_id) == [o.account.id for o in plain_outcomes(3)]


def test_a_database_outage_mid_write_is_waited_out(db_engine) -> None:
    run_id = new_run(db_engine)
    recorder = BackgroundRecorder(db_engine, run_id, separate_process=True)
    with run_row_locked(db_engine, run_id):
        for outcome in plain_outcomes(3):
            recorder.add(outcome)
        thread, errors = flushing(recorder)
        [writer_backend] = wait_for(lambda: lock_waiters(db_engine), "the writer to wait")
        with db_engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": writer_backend})
        # the child reconnects and writes again: on another backend
        wait_for(
            lambda: [pid for pid in lock_waiters(db_engine) if pid != writer_backend],
            "the writer to retry on a new connection",
        )
    thread.join(WAIT_SECONDS)
    recorder.stop()

    assert errors == []
    assert recorder.process is not None and recorder.process.figures.children == 1
    assert recorded_accounts(db_engine, run_id) == [o.account.id for o in plain_outcomes(3)]


def test_a_failed_write_comes_back_to_the_scan_and_keeps_its_batch(db_engine) -> None:
    run_id = new_run(db_engine)
    finish_run(db_engine, run_id)
    recorder = BackgroundRecorder(db_engine, run_id, separate_process=True)
    assert recorder.process is not None
    child = recorder.process.process
    assert child is not None
    recorder.add(plain_outcomes(1)[0])
    with pytest.raises(RunStateError, match="already finished"):
        recorder.flush()
    with pytest.raises(RunStateError):
        recorder.add(plain_outcomes(2)[1])
    recorder.stop()

    assert [o.account.id for o in recorder.pending] == [plain_outcomes(1)[0].account.id]
    assert child.poll() == 0  # stopped with the recorder, not left behind
    assert recorder.process.process is None


def test_children_that_keep_dying_fail_the_write_clearly() -> None:
    process = WriterProcess("not a database url")  # every child dies making its engine
    try:
        with pytest.raises(WriterProcessDied, match="died 3 times writing 2 finished accounts"):
            process.write(1, plain_outcomes(2))
    finally:
        process.close()
    assert process.figures.children == 3


def test_a_child_reports_its_own_peak_memory_not_its_parents() -> None:
    # ru_maxrss of a child started from a large process would say the parent's size
    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touch every page
    assert own_peak_rss_mb() >= 300
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from scanner.writer_process import own_peak_rss_mb as p; print(p())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    del ballast
    assert float(child.stdout) < 150
