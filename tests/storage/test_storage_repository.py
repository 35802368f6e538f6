"""Recording outcomes and reading them back."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import Engine, func, select
from storage_factories import error_outcome, make_outcome, make_result

from scanner.model import AccountOutcome
from storage import repository as repo
from storage.models import Account, AccountScan, CheckResult, ScanRun


def _start(engine: Engine, total: int = 2) -> int:
    return repo.start_run(
        engine,
        trigger="cli",
        host="test:1",
        config_fingerprint="abc123",
        simulator_source="aws",
        accounts_total=total,
    )


def test_start_run_is_running_and_found(engine: Engine) -> None:
    run_id = _start(engine)
    running = repo.find_running_runs(engine)
    assert [run.id for run in running] == [run_id]
    assert running[0].status == "running" and running[0].host == "test:1"
    assert repo.latest_run(engine).id == run_id
    assert repo.latest_run(engine, finished_only=True) is None


def test_round_trip_keeps_evidence_and_remediation(engine: Engine) -> None:
    run_id = _start(engine)
    outcome = make_outcome("111111111111", {"backup:CreateBackupVault": "pass"})
    remediation = {"layer": "scp", "policy": "p-deny-backup", "change": ["remove Deny"]}
    failing = make_result(
        "111111111111",
        "kms:CreateGrant",
        "fail",
        remediation=remediation,
        disagreement=True,
        simulator_decision="allowed",
        simulator_source="aws",
    )
    outcome.results.append(failing)
    repo.record_outcomes(engine, run_id, [outcome])
    totals = repo.finish_run(engine, run_id)

    assert (totals.status, totals.checks_total, totals.checks_passed, totals.checks_failed) == (
        "succeeded",
        2,
        1,
        1,
    )
    assert totals.disagreements == 1 and totals.accounts_scanned == 1
    assert totals.drift == {"new": 2}

    rows = {row["check"]: row for row in repo.latest_results(engine)}
    assert set(rows) == {"backup:CreateBackupVault", "kms:CreateGrant"}
    grant = rows["kms:CreateGrant"]
    assert grant["evidence"] == {
        "scenario": failing.scenario,
        "explanation": failing.explanation,
        "confidence": failing.confidence,
    }
    assert grant["remediation"] == remediation
    assert grant["account_name"] == "acct-1111"
    assert grant["ou_path"] == "r-ab12/ou-ab12-11111111"
    assert grant["ou_path_names"] == "Root/Prod"
    assert (grant["status"], grant["deciding_layer"], grant["policy"]) == (
        "fail",
        "scp",
        "p-deny-backup",
    )
    assert grant["disagreement"] is True
    assert grant["failing_since"] is not None
    assert rows["backup:CreateBackupVault"]["remediation"] is None  # SQL NULL, not JSON null
    assert rows["backup:CreateBackupVault"]["failing_since"] is None

    with engine.connect() as conn:
        api_calls = conn.execute(select(AccountScan.api_calls)).scalar_one()
        null_remediations = conn.execute(
            select(func.count()).where(CheckResult.remediation.is_(None))
        ).scalar_one()
    assert api_calls == {"iam:ListRoles": 1, "iam:SimulatePrincipalPolicy": 1}
    assert null_remediations == 1


def test_latest_results_filters(engine: Engine) -> None:
    run_id = _start(engine)
    repo.record_outcomes(
        engine,
        run_id,
        [
            make_outcome(
                "111111111111", {"backup:CreateBackupVault": "pass", "kms:Decrypt": "fail"}
            ),
            make_outcome("222222222222", {"backup:CreateBackupVault": "fail"}),
        ],
    )
    repo.finish_run(engine, run_id)
    assert len(repo.latest_results(engine)) == 3
    assert {r["check"] for r in repo.latest_results(engine, account_id="111111111111")} == {
        "backup:CreateBackupVault",
        "kms:Decrypt",
    }
    failing = repo.latest_results(engine, status="fail")
    assert {(r["account_id"], r["check"]) for r in failing} == {
        ("111111111111", "kms:Decrypt"),
        ("222222222222", "backup:CreateBackupVault"),
    }
    assert len(repo.latest_results(engine, check="kms:Decrypt")) == 1
    assert len(repo.latest_results(engine, role="BackupOperator")) == 3
    by_arn = repo.latest_results(engine, role="arn:aws:iam::222222222222:role/BackupOperator")
    assert [r["account_id"] for r in by_arn] == ["222222222222"]
    assert repo.latest_results(engine, role="Backup_perator") == []  # _ is not a wildcard
    assert repo.latest_results(engine, region="us-east-1") == []
    failing_now = repo.failing_checks(engine)
    assert sorted(r["check"] for r in failing_now) == ["backup:CreateBackupVault", "kms:Decrypt"]
    assert all(r["failing_since"] is not None and r["deciding_layer"] == "scp" for r in failing_now)
    assert {r["account_name"] for r in failing_now} == {"acct-1111", "acct-2222"}


def test_record_in_batches_and_rerecord_replaces(engine: Engine) -> None:
    run_id = _start(engine, total=3)
    repo.record_outcomes(engine, run_id, [make_outcome("111111111111", {"a:One": "pass"})])
    repo.record_outcomes(engine, run_id, [error_outcome("222222222222")])
    repo.record_outcomes(
        engine, run_id, [make_outcome("333333333333", {"a:One": "pass", "a:Two": "pass"})]
    )
    # The same account again (a retry): replaces its rows instead of failing on the key,
    # and a result the retry no longer has is dropped.
    repo.record_outcomes(engine, run_id, [make_outcome("333333333333", {"a:One": "fail"})])
    totals = repo.finish_run(engine, run_id)
    assert (totals.accounts_scanned, totals.accounts_errored, totals.status) == (2, 1, "partial")
    assert (totals.checks_total, totals.checks_failed) == (2, 1)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Account)).scalar_one() == 3
        run = conn.execute(select(ScanRun).where(ScanRun.id == run_id)).one()
    assert run.finished_at is not None and run.accounts_errored == 1 and run.accounts_total == 3


def test_accounts_track_first_and_last_seen(engine: Engine) -> None:
    first = _start(engine)
    repo.record_outcomes(engine, first, [make_outcome("111111111111", {"a:One": "pass"})])
    repo.finish_run(engine, first)
    second = _start(engine)
    renamed = make_outcome("111111111111", {"a:One": "pass"})
    renamed.account = type(renamed.account)(id="111111111111", name="renamed")
    repo.record_outcomes(engine, second, [renamed])
    repo.finish_run(engine, second)
    with engine.connect() as conn:
        account = conn.execute(select(Account)).one()
    assert (account.first_seen_scan_id, account.last_seen_scan_id) == (first, second)
    assert account.name == "renamed" and account.ou_path == ""


def test_finished_run_refuses_more_results(engine: Engine) -> None:
    run_id = _start(engine)
    repo.finish_run(engine, run_id)
    with pytest.raises(repo.RunStateError, match="already finished"):
        repo.record_outcomes(engine, run_id, [make_outcome("111111111111", {"a:One": "pass"})])
    with pytest.raises(repo.RunStateError, match="already finished"):
        repo.finish_run(engine, run_id)
    with pytest.raises(repo.RunStateError, match="does not exist"):
        repo.finish_run(engine, run_id + 100)


def test_finish_run_rejects_unknown_status(engine: Engine) -> None:
    run_id = _start(engine)
    with pytest.raises(ValueError, match="status must be one of"):
        repo.finish_run(engine, run_id, status="done")


def test_mark_interrupted_closes_run_once(engine: Engine) -> None:
    run_id = _start(engine)
    repo.mark_interrupted(engine, run_id, "replica stopped")
    repo.mark_interrupted(engine, run_id, "again")  # already closed: left as it is
    run = repo.latest_run(engine, finished_only=True)
    assert (run.id, run.status, run.error) == (run_id, "interrupted", "replica stopped")
    assert repo.find_running_runs(engine) == []
    with pytest.raises(repo.RunStateError, match="does not exist"):
        repo.mark_interrupted(engine, run_id + 100, "no such run")


def test_json_evidence_with_dates_and_sets(engine: Engine) -> None:
    from datetime import UTC, datetime

    run_id = _start(engine)
    result = make_result(
        "111111111111",
        "kms:KeyState",
        "fail",
        scenario={"deletion_date": datetime(2026, 1, 2, tzinfo=UTC), "aliases": {"b", "a"}},
    )
    outcome = AccountOutcome(
        account=make_outcome("111111111111", {}).account,
        status="ok",
        results=[result],
        api_calls=Counter(),
    )
    repo.record_outcomes(engine, run_id, [outcome])
    repo.finish_run(engine, run_id)
    [row] = repo.latest_results(engine)
    assert row["evidence"]["scenario"] == {
        "deletion_date": "2026-01-02T00:00:00+00:00",
        "aliases": ["a", "b"],
    }


def test_parallel_writers_then_finish(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    accounts = [f"{100000000000 + n}" for n in range(16)]
    run_id = _start(engine, total=len(accounts))
    checks = {f"svc:Action{n}": ("fail" if n % 3 == 0 else "pass") for n in range(20)}
    with ThreadPoolExecutor(8) as pool:  # the scan runner's writer threads
        for future in [
            pool.submit(repo.record_outcomes, engine, run_id, [make_outcome(a, checks)])
            for a in accounts
        ]:
            future.result()
    totals = repo.finish_run(engine, run_id)
    assert (totals.accounts_scanned, totals.checks_total) == (16, 16 * 20)
    assert totals.checks_failed == 16 * 7
    assert totals.drift == {"new": 16 * 20}


def test_record_outcomes_is_bulk(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import event

    accounts = [f"{100000000000 + n}" for n in range(10)]
    outcomes = [make_outcome(a, {f"svc:A{n}": "pass" for n in range(50)}) for a in accounts]
    run_id = _start(engine, total=len(accounts))
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    monkeypatch.setattr(repo, "RESULT_BATCH", 200)  # 500 results -> 3 chunks
    event.listen(engine, "before_cursor_execute", count)
    try:
        repo.record_outcomes(engine, run_id, outcomes)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    inserts = [s for s in statements if "INSERT INTO check_results" in s]
    assert len(inserts) == 3
    assert len(statements) <= 7  # run check, re-record check, accounts, scans, 3 chunks
    totals = repo.finish_run(engine, run_id)
    assert totals.checks_total == 500


def test_latest_results_without_evidence(engine: Engine) -> None:
    run_id = _start(engine)
    repo.record_outcomes(engine, run_id, [make_outcome("111111111111", {"a:One": "fail"})])
    repo.finish_run(engine, run_id)
    [row] = repo.latest_results(engine, include_evidence=False)
    assert row["evidence"] is None and row["remediation"] is None and row["status"] == "fail"
    [full] = repo.latest_results(engine)
    assert full["evidence"]["scenario"]["action"] == "a:One"
