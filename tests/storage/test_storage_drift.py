"""Drift across runs: what changed, since when it fails, and what incomplete runs may not say.

Accounts: A scanned every time; B errors in run 2; C fails, errors, fails again; D leaves
the organization after run 2. A fourth, interrupted run must not declare anything gone.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from storage_factories import error_outcome, key, make_outcome, run

from storage import repository as repo
from storage.models import CheckResult, CheckState

A, B, C, D = "111111111111", "222222222222", "333333333333", "444444444444"


def events(engine: Engine, run_id: int) -> dict[str, str]:
    """check key -> kind for the run's drift events (one event per key and run)."""
    found = repo.drift_events(engine, run_id=run_id)
    pairs = {(e["check_key"], e["kind"]) for e in found}
    assert len(pairs) == len(found), "a key got two events in one run"
    return dict(pairs)


def state(engine: Engine) -> dict[str, CheckState]:
    with engine.connect() as conn:
        return {row.check_key: row for row in conn.execute(select(CheckState))}


@pytest.fixture
def three_runs(engine: Engine):
    run1 = run(
        engine,
        [
            make_outcome(A, {"c1": "pass", "c2": "fail", "c3": "pass"}),
            make_outcome(B, {"c1": "pass"}),
            make_outcome(C, {"c1": "fail"}),
            make_outcome(D, {"c1": "pass"}),
        ],
    )
    run2 = run(
        engine,
        [
            make_outcome(A, {"c1": "fail", "c2": "fail", "c4": "pass"}),  # c3 gone, c4 new
            error_outcome(B),
            error_outcome(C),
            make_outcome(D, {"c1": "pass"}),
        ],
    )
    run3 = run(
        engine,
        [
            make_outcome(A, {"c1": "fail", "c2": "pass", "c4": "pass"}),
            make_outcome(B, {"c1": "fail"}),
            make_outcome(C, {"c1": "fail"}),
            # D is no longer part of the organization
        ],
    )
    return run1, run2, run3


def test_first_run_reports_every_key_as_new(engine: Engine, three_runs) -> None:
    (run1, started1), _, _ = three_runs
    assert events(engine, run1) == {
        key(A, "c1"): "new",
        key(A, "c2"): "new",
        key(A, "c3"): "new",
        key(B, "c1"): "new",
        key(C, "c1"): "new",
        key(D, "c1"): "new",
    }


def test_second_run_regressed_new_gone_and_error(engine: Engine, three_runs) -> None:
    (_, started1), (run2, started2), _ = three_runs
    assert events(engine, run2) == {
        key(A, "c1"): "regressed",
        key(A, "c3"): "gone",
        key(A, "c4"): "new",
        key(B, "c1"): "error",  # errored account: error, not gone
        key(C, "c1"): "error",
    }
    with engine.connect() as conn:
        rows = {
            r.check_key: r.failing_since
            for r in conn.execute(
                select(CheckResult.check_key, CheckResult.failing_since).where(
                    CheckResult.scan_run_id == run2
                )
            )
        }
    assert rows[key(A, "c1")] == started2  # a new failing streak starts with this run
    assert rows[key(A, "c2")] == started1  # the streak started in run 1 goes on
    assert rows[key(A, "c4")] is None


def test_third_run_keeps_failing_since_fixed_and_gone(engine: Engine, three_runs) -> None:
    (_, started1), (_, started2), (run3, _) = three_runs
    assert events(engine, run3) == {
        key(A, "c2"): "fixed",
        key(B, "c1"): "regressed",  # B passed before its error, fails now
        key(D, "c1"): "gone",  # account left the organization
        # C fails again after an error: same streak, so no event
    }
    now = state(engine)
    assert now[key(A, "c1")].status == "fail" and now[key(A, "c1")].failing_since == started2
    assert now[key(C, "c1")].status == "fail" and now[key(C, "c1")].failing_since == started1
    assert now[key(A, "c2")].status == "pass" and now[key(A, "c2")].failing_since is None
    assert now[key(A, "c3")].status == "gone" and now[key(D, "c1")].status == "gone"
    failing = {row["check_key"]: row["failing_since"] for row in repo.failing_checks(engine)}
    assert failing == {
        key(A, "c1"): started2,
        key(B, "c1"): failing[key(B, "c1")],
        key(C, "c1"): started1,
    }
    latest = {row["check_key"] for row in repo.latest_results(engine)}
    assert key(A, "c3") not in latest and key(D, "c1") not in latest


def test_errored_account_keeps_its_checks_and_streak(engine: Engine) -> None:
    (_, started1) = run(engine, [make_outcome(C, {"c1": "fail", "c2": "pass"})])
    run(engine, [error_outcome(C, "AccessDenied: sts:AssumeRole")])
    now = state(engine)
    assert {now[key(C, c)].status for c in ("c1", "c2")} == {"error"}
    assert now[key(C, "c1")].failing_since == started1
    [row] = repo.latest_results(engine, check="c1")
    assert row["status"] == "error"
    assert "AccessDenied" in row["message"]
    assert row["evidence"]["scenario"]["action"] == "c1"  # the last real evidence is kept
    assert repo.failing_checks(engine) == []  # unknown now, not known to be failing


def test_interrupted_run_declares_nothing_gone(engine: Engine) -> None:
    run(
        engine,
        [
            make_outcome(A, {"c1": "fail", "c2": "pass"}),
            make_outcome(B, {"c1": "pass"}),
        ],
    )
    run_id, _ = run(engine, [make_outcome(A, {"c1": "pass"})], interrupt=True)
    assert events(engine, run_id) == {key(A, "c1"): "fixed"}
    now = state(engine)
    assert now[key(A, "c2")].status == "pass" and now[key(B, "c1")].status == "pass"
    assert repo.latest_run(engine).status == "interrupted"


def test_failed_run_declares_nothing_gone(engine: Engine) -> None:
    run(engine, [make_outcome(A, {"c1": "pass", "c2": "pass"})])
    run_id = repo.start_run(
        engine,
        trigger="cli",
        host="t",
        config_fingerprint="f",
        simulator_source="aws",
        accounts_total=1,
    )
    repo.record_outcomes(engine, run_id, [make_outcome(A, {"c1": "fail"})])
    totals = repo.finish_run(engine, run_id, status="failed", error="organizations walk broke")
    assert totals.status == "failed" and totals.drift == {"regressed": 1}
    assert state(engine)[key(A, "c2")].status == "pass"


def test_key_back_after_gone_is_new_and_kinds_filter(engine: Engine) -> None:
    run(engine, [make_outcome(A, {"c1": "pass"})])
    run(engine, [make_outcome(A, {})])
    run_id, _ = run(engine, [make_outcome(A, {"c1": "fail"})])
    [event] = repo.drift_events(engine, run_id=run_id)
    assert (event["kind"], event["previous_status"], event["current_status"]) == (
        "new",
        "gone",
        "fail",
    )
    assert event["account_name"] == "acct-1111"
    assert [e["kind"] for e in repo.drift_events(engine, kinds=["gone"])] == ["gone"]
    assert len(repo.drift_events(engine, since=event["occurred_at"])) == 1


def test_unchanged_runs_write_no_events(engine: Engine) -> None:
    outcomes = [make_outcome(A, {"c1": "fail", "c2": "pass"})]
    run(engine, outcomes)
    run_id, _ = run(engine, outcomes)
    assert events(engine, run_id) == {}


def test_account_error_with_some_results(engine: Engine) -> None:
    run(engine, [make_outcome(A, {"c1": "pass", "c2": "fail"})])
    partial = make_outcome(A, {"c1": "pass"})
    partial.status, partial.error = "error", "throttled while reading keys"
    run_id, _ = run(engine, [partial])
    # what was read is compared; what was not becomes error (never gone)
    assert events(engine, run_id) == {key(A, "c2"): "error"}
    now = state(engine)
    assert (now[key(A, "c1")].status, now[key(A, "c2")].status) == ("pass", "error")
    assert repo.latest_run(engine).status == "partial"
