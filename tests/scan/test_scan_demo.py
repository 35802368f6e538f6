"""`vaultscan demo` end to end, in-process, into a real PostgreSQL database."""

from __future__ import annotations

import re
import sys

from sqlalchemy import create_engine, func, select

from scanner import cli
from scanner.sandbox_data.layout import ACCOUNT_PLANS
from storage.models import Account, DriftEvent, ScanRun


def test_demo_prints_every_accounts_verdict_and_stores_the_run(database_url, capsys):
    assert cli.main(["demo", "--database-url", database_url]) == 0
    out = capsys.readouterr().out

    assert "simulator: vaultscan engine (moto has no SimulatePrincipalPolicy)" in out
    for plan in ACCOUNT_PLANS:
        verdict = "PASS" if plan.healthy else "FAIL"
        # the account's row of the verdict table: name, OU path, verdict
        row = re.search(rf"│ {re.escape(plan.name)}\s+│ ([^│]+)│ (\w+)\s+│", out)
        assert row, plan.name
        assert row.group(1).strip().endswith(plan.ou), plan.name
        assert row.group(2) == verdict, plan.name
        assert plan.expectation.summary in out
        for extra in plan.extra_roles:
            assert f"{extra.name}: {extra.expectation.summary}" in out
    failing = sum(1 for plan in ACCOUNT_PLANS if not plan.healthy)
    total = len(ACCOUNT_PLANS)
    assert total == 20
    assert f"{total} accounts: {total - failing} pass, {failing} fail, 0 error" in out
    # fixes are printed as JSON statements and commands
    assert '"backup-storage:MountCapsule"' in out
    assert "$ aws kms enable-key --key-id arn:aws:kms:" in out
    assert "vaultscan results --status fail --database-url" in out
    assert "vaultscan explain scenarios/" in out

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            run = conn.execute(select(ScanRun)).one()
    finally:
        engine.dispose()
    assert (run.trigger, run.status, run.simulator_source) == (
        "demo",
        "succeeded",
        "sandbox-engine",
    )
    assert run.accounts_scanned == len(ACCOUNT_PLANS)
    assert f"scan run #{run.id} (succeeded)" in out


def test_next_steps_name_the_program_as_it_was_started(tmp_path, monkeypatch):
    from scanner.commands.demo import invoked_as

    program = tmp_path / ".venv" / "bin" / "vaultscan"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert invoked_as(str(program)) == str(program)  # not on PATH: the path that ran it
    monkeypatch.setenv("PATH", f"{program.parent}:/usr/bin:/bin")
    assert invoked_as(str(program)) == "vaultscan"  # an activated virtualenv
    assert invoked_as("vaultscan") == "vaultscan"


def test_a_second_demo_finds_the_same_organization_and_no_drift(database_url, capsys):
    assert cli.main(["demo", "--database-url", database_url]) == 0
    assert cli.main(["demo", "--database-url", database_url]) == 0
    capsys.readouterr()

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(select(ScanRun.id, ScanRun.status).order_by(ScanRun.id)).all()
            kinds = (
                conn.execute(select(DriftEvent.kind).where(DriftEvent.scan_run_id == runs[1].id))
                .scalars()
                .all()
            )
            accounts = conn.execute(select(func.count()).select_from(Account)).scalar_one()
    finally:
        engine.dispose()
    assert [run.status for run in runs] == ["succeeded", "succeeded"]
    assert kinds == []  # same accounts, roles and keys: nothing new, gone or changed
    assert accounts == len(ACCOUNT_PLANS)


def test_break_then_repair_shows_the_regression_and_the_fix(database_url, capsys):
    assert cli.main(["demo", "--database-url", database_url]) == 0
    assert cli.main(["demo", "--database-url", database_url, "--break", "prod-payments"]) == 0
    broke = capsys.readouterr().out
    assert "What changed in scan run #2 (prod-payments):" in broke
    assert re.search(r"regressed\s+backup:CreateBackupVault\s+\S+\s+pass -> fail", broke)
    assert "VaultscanRegressionDetected" in broke
    assert "demo --repair prod-payments" in broke
    assert cli.main(["demo", "--database-url", database_url, "--repair", "prod-payments"]) == 0
    repaired = capsys.readouterr().out
    assert re.search(r"fixed\s+backup:CreateBackupVault\s+\S+\s+fail -> pass", repaired)

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            kinds = conn.execute(
                select(DriftEvent.scan_run_id, DriftEvent.kind, func.count())
                .where(DriftEvent.kind.in_(("regressed", "fixed")))
                .group_by(DriftEvent.scan_run_id, DriftEvent.kind)
                .order_by(DriftEvent.scan_run_id)
            ).all()
    finally:
        engine.dispose()
    # one regression and one fix per sandbox region, in runs 2 and 3
    assert [(run, kind) for run, kind, _ in kinds] == [(2, "regressed"), (3, "fixed")]
    assert kinds[0][2] == kinds[1][2] >= 2
    # the report's "what changed" names the account and the cause
    assert cli.main(["report", "--database-url", database_url, "--days", "1"]) == 0
    report = capsys.readouterr().out
    regressions = report.split("## Regressions", 1)[1].split("## ", 1)[0]
    assert "prod-payments" in regressions and "EmergencyFreeze" in regressions


def test_break_refuses_an_account_that_already_fails(database_url, capsys):
    planted = next(plan.name for plan in ACCOUNT_PLANS if not plan.healthy)
    assert cli.main(["demo", "--database-url", database_url, "--break", planted]) == 2
    err = capsys.readouterr().err
    assert f"{planted} already fails" in err and "prod-payments" in err


def test_demo_without_moto_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    # moto is the optional extra vaultscan[demo]; None in sys.modules makes import fail
    monkeypatch.setitem(sys.modules, "moto", None)
    code = cli.main(["demo", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "pip install 'vaultscan[demo]'" in err
    assert "make demo" in err
    assert not (tmp_path / "pgdata").exists()  # nothing started before the check
