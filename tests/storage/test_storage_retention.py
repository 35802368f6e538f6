"""Retention: old runs lose their evidence in batches; the latest state, the start of
every failing streak, the run counts and the drift counters stay; a scan recording at the
same time is not disturbed.

Four runs. A's c1 fails from run 1 on (its streak starts in run 1); A's c2 passes, regresses
in run 2 and is fixed in run 3; B is read in run 1 only and cannot be read afterwards, so
its latest evidence is run 1's. Pruning with the cut-off at run 3's start removes runs 1
and 2.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text
from storage_factories import error_outcome, key, make_outcome, run

from exporters.metrics import build_registry
from exporters.report import build_report
from storage import repository as repo
from storage.models import CheckResult, CheckState, ScanRun
from storage.retention import prune, table_bytes, table_rows

A, B = "111111111111", "222222222222"
DRIFT_KINDS = ("regressed", "fixed", "new", "gone", "error")


def drift_counters(engine: Engine) -> dict[str, float | None]:
    registry = build_registry(engine)
    return {
        kind: registry.get_sample_value("vaultscan_drift_events_total", {"kind": kind})
        for kind in DRIFT_KINDS
    }


def state_rows(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(row) for row in conn.execute(select(CheckState).order_by(CheckState.check_key))
        ]


def results_of(engine: Engine, run_id: int) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.scalars(select(CheckResult.check_key).where(CheckResult.scan_run_id == run_id))
        )


@pytest.fixture
def four_runs(engine: Engine) -> list[tuple[int, datetime]]:
    return [
        run(
            engine, [make_outcome(A, {"c1": "fail", "c2": "pass"}), make_outcome(B, {"c1": "pass"})]
        ),
        run(engine, [make_outcome(A, {"c1": "fail", "c2": "fail"}), error_outcome(B)]),
        run(engine, [make_outcome(A, {"c1": "fail", "c2": "pass"}), error_outcome(B)]),
        run(engine, [make_outcome(A, {"c1": "fail", "c2": "pass"}), error_outcome(B)]),
    ]


def test_prune_removes_old_evidence_and_keeps_state_and_counters(
    engine: Engine, four_runs: list[tuple[int, datetime]]
) -> None:
    (run1, _), (run2, _), (run3, run3_started), (run4, _) = four_runs
    rows_before = table_rows(engine)
    counters_before = drift_counters(engine)
    state_before = state_rows(engine)
    latest_before = repo.latest_results(engine)
    assert counters_before["regressed"] == 1 and counters_before["fixed"] == 1
    assert rows_before["check_results"] == 3 + 2 + 2 + 2
    assert rows_before["account_scans"] == 8

    # the cut-off is run 3's start: runs 1 and 2 are old, 3 and 4 recent
    result = prune(engine, keep_days=1, now=run3_started + timedelta(days=1), batch_size=1)

    rows_after = table_rows(engine)
    # run 1 keeps A/c1 (its failing streak began there) and B/c1 (B's latest evidence);
    # run 2 keeps nothing; runs 3 and 4 keep everything
    assert results_of(engine, run1) == {key(A, "c1"), key(B, "c1")}
    assert results_of(engine, run2) == set()
    assert results_of(engine, run3) == {key(A, "c1"), key(A, "c2")}
    assert results_of(engine, run4) == {key(A, "c1"), key(A, "c2")}
    assert rows_after["check_results"] == rows_before["check_results"] - 3
    assert result.check_results == 3
    # B's account reads of runs 1 and 2 go; A's too; runs 3 and 4 keep theirs
    assert rows_after["account_scans"] == rows_before["account_scans"] - 4
    # run 1's three "new", run 2's "regressed" (A/c2) and "error" (B/c1)
    assert result.drift_events == rows_before["drift_events"] - rows_after["drift_events"] == 5
    assert rows_after["scan_runs"] == rows_before["scan_runs"] == 4
    assert result.runs == 2
    assert result.batches > result.rows  # one row per transaction, plus an empty last one
    with engine.connect() as conn:
        pruned = dict(conn.execute(select(ScanRun.id, ScanRun.pruned_at)).all())
    assert pruned[run1] is not None and pruned[run2] is not None
    assert pruned[run3] is None and pruned[run4] is None

    # nothing anyone reads now has changed, and the counters did not go down
    assert drift_counters(engine) == counters_before
    assert state_rows(engine) == state_before
    assert repo.latest_results(engine) == latest_before

    # pruning again finds nothing to do
    again = prune(engine, keep_days=1, now=run3_started + timedelta(days=1))
    assert (again.runs, again.rows) == (0, 0)
    assert table_rows(engine) == rows_after


def test_newest_complete_run_is_kept_whatever_its_age(
    engine: Engine, four_runs: list[tuple[int, datetime]]
) -> None:
    (_, _), (_, _), (run3, _), (run4, run4_started) = four_runs
    result = prune(engine, keep_days=1, now=run4_started + timedelta(days=30))
    assert result.runs == 3
    assert results_of(engine, run4) == {key(A, "c1"), key(A, "c2")}
    assert results_of(engine, run3) == set()
    report = build_report(engine, days=7)
    # the compliance of the latest run is still there, counted when it finished
    assert report.now is not None and report.now.accounts_compliant == 0
    assert report.now.checks_failed == 1


def test_counters_keep_counting_after_pruning(
    engine: Engine, four_runs: list[tuple[int, datetime]]
) -> None:
    run4_started = four_runs[3][1]
    prune(engine, keep_days=1, now=run4_started + timedelta(days=30))
    before = drift_counters(engine)
    run(engine, [make_outcome(A, {"c1": "pass", "c2": "pass"}), error_outcome(B)])
    after = drift_counters(engine)
    assert after["fixed"] == before["fixed"] + 1
    assert all(after[kind] >= before[kind] for kind in DRIFT_KINDS)


def test_prune_rejects_bad_arguments(engine: Engine) -> None:
    with pytest.raises(ValueError, match="keep_days"):
        prune(engine, keep_days=0)
    with pytest.raises(ValueError, match="batch_size"):
        prune(engine, keep_days=1, batch_size=0)


def _big_history(engine: Engine, accounts: int, checks: int) -> None:
    ids = [f"{900000000000 + n}" for n in range(accounts)]
    statuses = {f"c{n}": "pass" for n in range(checks)}
    for _ in range(2):
        run(engine, [make_outcome(account, statuses) for account in ids])


def test_a_scan_recording_while_pruning_is_unaffected(engine: Engine) -> None:
    _big_history(engine, accounts=60, checks=10)  # 1,200 old results
    with engine.connect() as conn:
        cutoff_now = conn.execute(text("SELECT now() + interval '1 day'")).scalar_one()
    # the running scan: its accounts are recorded while the prune deletes row by row
    running = repo.start_run(
        engine,
        trigger="schedule",
        host="t",
        config_fingerprint="f",
        simulator_source="aws",
        accounts_total=20,
    )
    overlaps: list[bool] = []
    pruning = threading.Event()
    done = threading.Event()
    outcome: dict[str, object] = {}

    def prune_in_background() -> None:
        pruning.set()
        try:
            outcome["result"] = prune(engine, keep_days=1, now=cutoff_now, batch_size=5)
        finally:
            done.set()

    thread = threading.Thread(target=prune_in_background)
    thread.start()
    pruning.wait(5)
    waits = []
    for n in range(20):
        account = f"{800000000000 + n}"
        began = time.perf_counter()
        repo.record_outcomes(engine, running, [make_outcome(account, {"c1": "fail", "c2": "pass"})])
        waits.append(time.perf_counter() - began)
        overlaps.append(not done.is_set())
    totals = repo.finish_run(engine, running)
    thread.join(60)
    assert not thread.is_alive()
    assert any(overlaps), "the prune finished before the scan recorded anything"
    # the running scan's rows are all there and its totals are right
    assert (totals.checks_total, totals.checks_failed, totals.accounts_scanned) == (40, 20, 20)
    assert len(results_of(engine, running)) == 40
    # and no write of the scan waited on the prune for long (each batch is one short
    # transaction); generous bound for a loaded test machine
    assert max(waits) < 5.0
    result = outcome["result"]
    # the newest complete run before it is kept; the older one loses its 600 results
    assert result.check_results == 600  # type: ignore[union-attr]
    assert table_bytes(engine)["check_results"] > 0
