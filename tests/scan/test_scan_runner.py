"""run_scan end to end: the sandbox through moto into a real PostgreSQL database."""

from __future__ import annotations

import dataclasses
import json
import threading

import boto3
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import func, select

from scanner import cli
from scanner.runner import run_scan
from scanner.sandbox import sandbox_settings
from scanner.sandbox_data.layout import ACCOUNT_PLANS
from storage.models import AccountScan, CheckResult, ScanRun
from storage.repository import latest_results, latest_run


def _expected_failures(sandbox) -> int:
    return sum(len(a.failing(r)) for a in sandbox.accounts for r in sandbox.regions)


def test_full_scan_is_stored_counted_and_replayable(seeded, db_engine, tmp_path, capsys):
    progress = []
    report = run_scan(
        seeded.settings,
        engine=db_engine,
        sessions=seeded.sessions(),
        progress=lambda done, total, account: progress.append((done, total)),
    )
    sandbox = seeded.sandbox
    totals = report.totals
    assert (totals.status, totals.accounts_total, totals.accounts_scanned) == (
        "succeeded",
        len(sandbox.accounts),
        len(sandbox.accounts),
    )
    assert totals.checks_total == sandbox.check_count() == 384
    assert totals.checks_failed == _expected_failures(sandbox)
    assert totals.checks_errored == 0 and totals.disagreements == 0
    total = len(ACCOUNT_PLANS)
    assert progress[0] == (0, total) and progress[-1] == (total, total)
    # the management account is not scanned unless configured
    scanned = {outcome.account.id for outcome in report.summary.outcomes}
    assert sandbox.management_account_id not in scanned
    assert report.simulator_note == (
        "simulator: vaultscan engine (moto has no SimulatePrincipalPolicy)"
    )

    run = latest_run(db_engine)
    assert (run.id, run.status, run.simulator_source) == (
        report.run_id,
        "succeeded",
        "sandbox-engine",
    )
    failing = latest_results(db_engine, status="fail")
    assert len(failing) == _expected_failures(sandbox)
    by_account = {row["account_id"]: row for row in failing}
    legacy = sandbox.by_name("legacy-billing")
    row = by_account[legacy.account_id]
    assert (row["account_name"], row["ou_path_names"]) == (
        "legacy-billing",
        "Root/Workloads/Legacy",
    )
    assert row["deciding_layer"] == "scp" and row["statement"] == "DenyVaults"
    assert row["remediation"]["kind"] == "edit-scp-deny"
    _assert_stored_scenarios_replay(failing, tmp_path, capsys)


def test_a_service_scan_records_verdicts_without_keeping_them(seeded, db_engine):
    report = run_scan(
        seeded.settings, engine=db_engine, sessions=seeded.sessions(), keep_results=False
    )
    sandbox = seeded.sandbox
    assert len(report.summary.outcomes) == len(sandbox.accounts)
    assert report.summary.results == []  # nothing held in memory...
    assert {o.status for o in report.summary.outcomes} == {"ok"}
    # ...yet every verdict is in the database
    assert len(latest_results(db_engine, status="fail")) == _expected_failures(sandbox)
    assert report.totals.checks_total == sandbox.check_count()


def _assert_stored_scenarios_replay(rows, tmp_path, capsys) -> None:
    """Every stored failure's scenario, replayed by `vaultscan explain`, gets the stored
    decision and deciding layer."""
    rows = [row for row in rows if row["decision"]]
    assert {row["decision"] for row in rows} == {"explicitDeny", "implicitDeny"}
    for number, row in enumerate(rows):
        (tmp_path / f"{number}.json").write_text(json.dumps(row["evidence"]["scenario"]))
    capsys.readouterr()
    assert cli.main(["explain", str(tmp_path), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert len(answers) == len(rows)
    replayed = sorted((a["decision"], a["deciding_layer"]) for a in answers)
    stored = sorted((row["decision"], row["deciding_layer"]) for row in rows)
    assert replayed == stored
    assert all(answer["agrees"] for answer in answers)


@pytest.fixture
def assume_role_denied_for(seeded):
    """Make sts:AssumeRole into one account fail as AWS would (AccessDenied). The hook goes
    on a boto3 session of its own (same moto state): the module's `seeded` stays as it is."""
    victim = seeded.sandbox.by_name("prod-payments").account_id
    own_session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    denied = dataclasses.replace(seeded, session=own_session)

    def deny(params, **_):
        if f":{victim}:" in params.get("RoleArn", ""):
            raise ClientError(
                {
                    "Error": {
                        "Code": "AccessDenied",
                        "Message": "not authorized to perform: sts:AssumeRole",
                    }
                },
                "AssumeRole",
            )

    denied.session.events.register("before-parameter-build.sts.AssumeRole", deny)
    yield victim, denied


def _only(seeded, *names: str):
    """Settings that scan only these sandbox accounts (keeps the test fast)."""
    ids = [seeded.sandbox.by_name(name).account_id for name in names]
    return sandbox_settings(seeded.sandbox, accounts={"include": ids})


def test_account_that_cannot_be_entered_is_an_error_and_the_scan_goes_on(
    seeded, db_engine, assume_role_denied_for
):
    victim, denied = assume_role_denied_for
    settings = _only(seeded, "prod-payments", "prod-orders", "legacy-billing")
    report = run_scan(settings, engine=db_engine, sessions=denied.sessions(settings))
    outcome = next(o for o in report.summary.outcomes if o.account.id == victim)
    assert outcome.status == "error"
    assert "AccessDenied" in outcome.error and "VaultscanReadRole" in outcome.error
    assert (report.totals.status, report.totals.accounts_errored) == ("partial", 1)
    assert report.totals.accounts_scanned == 2
    with db_engine.connect() as conn:
        error = conn.execute(
            select(AccountScan.error).where(
                AccountScan.scan_run_id == report.run_id, AccountScan.account_id == victim
            )
        ).scalar_one()
    assert "AccessDenied" in error
    assert latest_results(db_engine, account_id=victim) == []
    others = latest_results(db_engine)
    assert len({row["account_id"] for row in others}) == 2


def _results_in_run(engine, run_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(CheckResult).where(CheckResult.scan_run_id == run_id)
        ).scalar_one()


def test_stop_event_records_what_finished_and_marks_the_run_interrupted(seeded, db_engine):
    settings = sandbox_settings(seeded.sandbox, concurrency=1)
    stop = threading.Event()

    def stop_after_first(done, total, account):
        if done >= 1:
            stop.set()

    report = run_scan(
        settings,
        engine=db_engine,
        sessions=seeded.sessions(settings),
        progress=stop_after_first,
        stop_event=stop,
    )
    assert report.interrupted and report.totals.status == "interrupted"
    assert report.totals.accounts_scanned == 1
    assert len(report.summary.outcomes) == 1
    run = latest_run(db_engine)
    assert run.status == "interrupted" and f"stopped after 1 of {len(ACCOUNT_PLANS)}" in run.error
    [outcome] = report.summary.outcomes
    expected = seeded.sandbox.check_count({outcome.account.id})
    assert _results_in_run(db_engine, run.id) == len(report.summary.results) == expected


def test_a_crash_midway_keeps_finished_accounts_and_marks_the_run_failed(seeded, db_engine):
    settings = sandbox_settings(seeded.sandbox, concurrency=1)

    def crash_on_second(done, total, account):
        if done == 2:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run_scan(
            settings, engine=db_engine, sessions=seeded.sessions(settings), progress=crash_on_second
        )
    with db_engine.connect() as conn:
        run = conn.execute(select(ScanRun).order_by(ScanRun.id.desc())).first()
    assert run.status == "failed" and "disk full" in run.error
    with db_engine.connect() as conn:
        scanned = set(
            conn.execute(
                select(CheckResult.account_id).where(CheckResult.scan_run_id == run.id)
            ).scalars()
        )
    assert len(scanned) == 2
    assert _results_in_run(db_engine, run.id) == seeded.sandbox.check_count(scanned)


def test_progress_and_account_errors_are_logged_while_the_scan_runs(
    seeded, db_engine, assume_role_denied_for, caplog
):
    import json
    import logging

    from scanner.logs import JsonLinesFormatter, ProgressLog

    victim, denied = assume_role_denied_for
    settings = _only(seeded, "prod-payments", "prod-orders", "legacy-billing")
    caplog.set_level(logging.INFO)
    with ProgressLog(interval=0.02) as progress:
        report = run_scan(
            settings, engine=db_engine, sessions=denied.sessions(settings), progress=progress
        )
        progress.log_now()  # the scan may be faster than one interval on a fast machine
    lines = [r for r in caplog.records if r.name == "scanner.progress"]
    assert lines, "no progress line"
    assert lines[-1].getMessage() == "scan progress: 3 of 3 accounts done"
    assert (lines[-1].accounts_done, lines[-1].accounts_total) == (3, 3)
    # the unreadable account is logged when it happens, with its error
    [error] = [r for r in caplog.records if r.getMessage() == "account not read"]
    assert error.account == victim and "AccessDenied" in error.error
    assert report.totals.accounts_errored == 1
    # and as a JSON line for a log pipeline
    entry = json.loads(JsonLinesFormatter().format(error))
    assert entry["level"] == "INFO" and entry["message"] == "account not read"
    assert entry["account"] == victim and entry["time"].endswith("+00:00")
