"""A month of daily scans with drift, recorded through the real repository into a real
PostgreSQL, then the report's trend, OU roll-up, top fixes, linked causes and per-region
fixes checked against the database; the HTML rendered by headless Chromium.

The organization (nested OUs, two regions, checks c1 and c2 per region):
    Root/Prod/Payments: P1 (c2 regresses on day 10 by an SCP, fixed on day 20),
                        P2 (fails everything by another SCP, all month)
    Root/Prod/Web:      W1 (passes; unreadable on day 15, so that scan is partial)
    Root/Dev:           D1 (c1 fails all month: the key policy)
    Root/Sandbox/Deep/Deeper: S1 (passes)
Day 5 has no scan; day 25 has an interrupted scan before the complete one.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from exporters.report import build_report, render_html, render_json, render_markdown
from exporters.report.text import coverage_line
from scanner.model import Account, AccountOutcome, CheckResult, OrgUnit
from storage import repository as repo
from storage.db import make_engine
from storage.migrate import upgrade

REGIONS = ("eu-west-1", "us-east-1")
ROOT = OrgUnit("r-ab12", "Root")
PROD = OrgUnit("ou-ab12-prod0001", "Prod")
PAYMENTS = OrgUnit("ou-ab12-paym0001", "Payments")
WEB = OrgUnit("ou-ab12-web00001", "Web")
DEV = OrgUnit("ou-ab12-dev00001", "Dev")
SANDBOX = OrgUnit("ou-ab12-sand0001", "Sandbox")
DEEP = OrgUnit("ou-ab12-deep0001", "Deep")
DEEPER = OrgUnit("ou-ab12-deep0002", "Deeper")
# the owner tag: payments owns P1 and P2, platform W1 and D1; S1 carries none
OWNERS = {"P1": "payments", "P2": "payments", "W1": "platform", "D1": "platform"}
ACCOUNTS = {
    "P1": ("111111111111", (ROOT, PROD, PAYMENTS)),
    "P2": ("222222222222", (ROOT, PROD, PAYMENTS)),
    "W1": ("333333333333", (ROOT, PROD, WEB)),
    "D1": ("444444444444", (ROOT, DEV)),
    "S1": ("555555555555", (ROOT, SANDBOX, DEEP, DEEPER)),
}
DAYS = 30
SCP_BACKUP = ("scp", "p-deny-backup", "DenyBackup", "scp")
SCP_PAYMENTS = ("scp", "p-payments-guard", "DenyAll", "scp")
KEY_POLICY = ("resource_policy", "alias/aws/backup", None, "key_policy")


def _result(name: str, region: str, check: str, cause: tuple | None) -> CheckResult:
    account_id = ACCOUNTS[name][0]
    failing = cause is not None
    layer, policy, statement, fix_kind = cause or (None, None, None, None)
    remediation = None
    if failing:
        remediation = {
            "kind": fix_kind,
            "summary": f"change {policy}",
            "commands": [f"aws fix --policy {policy} --account {account_id} --region {region}"],
        }
    return CheckResult(
        account_id=account_id,
        region=region,
        role_arn=f"arn:aws:iam::{account_id}:role/BackupOperator",
        check=check,
        resource=f"arn:aws:backup:{region}:{account_id}:backup-vault:*",
        status="fail" if failing else "pass",
        decision="explicitDeny" if failing else "allowed",
        deciding_layer=layer,
        policy=policy,
        statement=statement,
        message=f"{check} {'denied' if failing else 'allowed'}",
        remediation=remediation,
        scenario={"action": check},
        explanation={"decision": "denied" if failing else "allowed"},
    )


def _causes(name: str, day: int) -> dict[str, tuple | None]:
    """check -> the cause that makes it fail on `day` (None: it passes)."""
    if name == "P2":
        return {"c1": SCP_PAYMENTS, "c2": SCP_PAYMENTS}
    if name == "D1":
        return {"c1": KEY_POLICY, "c2": None}
    if name == "P1" and 10 <= day < 20:
        return {"c1": None, "c2": SCP_BACKUP}
    return {"c1": None, "c2": None}


def _outcomes(day: int) -> list[AccountOutcome]:
    outcomes = []
    for name, (account_id, path) in ACCOUNTS.items():
        tags = (("team", OWNERS[name]),) if name in OWNERS else ()
        account = Account(id=account_id, name=name.lower(), ou_path=path, tags=tags)
        if name == "W1" and day == 15:
            outcomes.append(AccountOutcome(account=account, status="error", error="AccessDenied"))
            continue
        results = [
            _result(name, region, check, cause)
            for region in REGIONS
            for check, cause in _causes(name, day).items()
        ]
        outcomes.append(AccountOutcome(account=account, status="ok", results=results))
    return outcomes


def _date_run(engine: Engine, run_id: int, when: datetime) -> None:
    """Move run `run_id` (just finished) to `when`, with everything it dated: its events,
    the failing streaks it started and the state changes it made."""
    with engine.begin() as conn:
        old = conn.execute(
            text("SELECT started_at FROM scan_runs WHERE id = :id"), {"id": run_id}
        ).scalar_one()
        params = {"id": run_id, "old": old, "new": when, "done": when + timedelta(minutes=3)}
        conn.execute(
            text("UPDATE scan_runs SET started_at = :new, finished_at = :done WHERE id = :id"),
            params,
        )
        conn.execute(
            text("UPDATE drift_events SET occurred_at = :done WHERE scan_run_id = :id"), params
        )
        for table in ("check_results", "check_state"):
            conn.execute(
                text(f"UPDATE {table} SET failing_since = :new WHERE failing_since = :old"), params
            )
        conn.execute(
            text("UPDATE check_state SET last_changed_at = :done WHERE last_changed_at >= :old"),
            params,
        )


def _scan(engine: Engine, day: int, when: datetime, *, interrupt: bool = False) -> int:
    outcomes = _outcomes(day)
    run_id = repo.start_run(
        engine,
        trigger="schedule",
        host="t",
        config_fingerprint="f",
        simulator_source="aws",
        accounts_total=len(outcomes),
    )
    if interrupt:
        repo.record_outcomes(engine, run_id, outcomes[:2])
        repo.mark_interrupted(engine, run_id, "stopped")
    else:
        repo.record_outcomes(engine, run_id, outcomes)
        repo.finish_run(engine, run_id)
    _date_run(engine, run_id, when)
    return run_id


@pytest.fixture(scope="module")
def month(postgres_admin_conninfo: str) -> Iterator[tuple[Engine, datetime]]:
    """One database with the month of history for every test of this module."""
    import uuid

    import psycopg

    name = f"vaultscan_test_month_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_admin_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(postgres_admin_conninfo)
    url = (
        f"postgresql+psycopg://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
        f"{info.get('port', '5432')}/{name}"
    )
    upgrade(url)
    engine = make_engine(url)
    first = (datetime.now(UTC) - timedelta(days=DAYS)).replace(
        hour=6, minute=0, second=0, microsecond=0
    )
    for day in range(DAYS):
        if day == 5:
            continue  # no scan that day
        when = first + timedelta(days=day)
        if day == 25:
            _scan(engine, day, when - timedelta(hours=1), interrupt=True)
        _scan(engine, day, when)
    try:
        yield engine, first
    finally:
        engine.dispose()
        with psycopg.connect(postgres_admin_conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _db(engine: Engine, sql: str, **params: object) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_trend_has_every_day_and_matches_the_runs(month) -> None:
    engine, first = month
    report = build_report(engine, days=DAYS)
    days = {day.day: day for day in report.trend}
    assert len(report.trend) == DAYS + 1  # the period's first day (before day 0) included
    assert report.trend[0].runs == 0 and report.trend[0].ratio is None
    runs = _db(
        engine,
        "SELECT (finished_at AT TIME ZONE 'UTC')::date, id, status, checks_passed, "
        "checks_total FROM scan_runs ORDER BY finished_at",
    )
    assert len(runs) == DAYS - 1 + 1  # 29 days with a scan, plus the interrupted one
    last_complete = {d: (i, p, t) for d, i, s, p, t in runs if s in ("succeeded", "partial")}
    assert len(last_complete) == DAYS - 1
    for day, (run_id, passed, total) in last_complete.items():
        assert (days[day].run_id, days[day].checks_passed, days[day].checks_total) == (
            run_id,
            passed,
            total,
        )
    gap = (first + timedelta(days=5)).date()
    assert days[gap].runs == 0 and days[gap].ratio is None
    partial = (first + timedelta(days=15)).date()
    assert days[partial].partial_runs == 1 and days[partial].checks_total == 16
    interrupted = (first + timedelta(days=25)).date()
    assert (days[interrupted].runs, days[interrupted].complete_runs) == (2, 1)
    # day 10 to 19: P1's c2 fails in both regions, on top of P2's 4 and D1's 2
    assert days[(first + timedelta(days=12)).date()].checks_failed == 8
    assert days[(first + timedelta(days=22)).date()].checks_failed == 6
    assert coverage_line(report) == "29 complete scan(s) on 29 of the period's 31 days."


def test_ou_rollup_counts_every_account_below_each_ou(month) -> None:
    engine, _ = month
    report = build_report(engine, days=DAYS)
    ous = {ou.ou_names: ou for ou in report.ous}
    assert set(ous) == {
        "Root",
        "Root/Prod",
        "Root/Prod/Payments",
        "Root/Prod/Web",
        "Root/Dev",
        "Root/Sandbox",
        "Root/Sandbox/Deep",
        "Root/Sandbox/Deep/Deeper",
    }
    # Prod has no account of its own: everything comes from Payments and Web below it
    prod, payments, web = ous["Root/Prod"], ous["Root/Prod/Payments"], ous["Root/Prod/Web"]
    assert prod.accounts == payments.accounts + web.accounts == 3
    assert prod.checks_total == payments.checks_total + web.checks_total == 12
    assert prod.checks_failed == payments.checks_failed == 4  # P2, in a child OU
    assert prod.ratio is not None and prod.ratio < 1  # not 100% because a child fails
    assert (prod.failing_accounts, web.failing_accounts) == (1, 0)
    assert ous["Root/Sandbox"].accounts == ous["Root/Sandbox/Deep/Deeper"].accounts == 1
    assert ous["Root/Sandbox/Deep/Deeper"].depth == 4
    root = ous["Root"]
    db_total, db_failed = _db(
        engine,
        "SELECT count(*), count(*) FILTER (WHERE status = 'fail') FROM check_state "
        "WHERE status <> 'gone'",
    )[0]
    assert (root.accounts, root.checks_total, root.checks_failed) == (5, db_total, db_failed)


def test_top_fixes_links_and_every_region_commands(month) -> None:
    engine, _ = month
    report = build_report(engine, days=DAYS)
    # ranked by the failing checks each clears: P2's SCP (4), then D1's key policy (2)
    assert [(c.policy, c.failing_checks) for c in report.top_fixes] == [
        ("p-payments-guard", 4),
        ("alias/aws/backup", 2),
    ]
    # each multi-region cause lists every region's commands once, under the region
    for cause in report.top_fixes:
        for region in REGIONS:
            assert f"# {region} (written for" in "\n".join(cause.fix_commands)
            assert sum(f"--region {region}" in c for c in cause.fix_commands) == 1
        assert cause.fix_example.startswith("2 regions")
    # the regression and the fix of P1's c2, each linked to the SCP that denied it
    db_regressed = _db(engine, "SELECT count(*) FROM drift_events WHERE kind = 'regressed'")
    db_fixed = _db(engine, "SELECT count(*) FROM drift_events WHERE kind = 'fixed'")
    assert report.regressed_checks == db_regressed[0][0] == 2
    assert report.fixed_checks == db_fixed[0][0] == 2
    assert [(c.check, c.regions, c.cause) for c in report.regressions] == [
        ("c2", list(REGIONS), "SCP: p-deny-backup, statement DenyBackup")
    ]
    assert [(c.check, c.cause) for c in report.fixes] == [
        ("c2", "SCP: p-deny-backup, statement DenyBackup")
    ]
    markdown = render_markdown(report)
    assert "## Top fixes" in markdown and "## By OU" in markdown and "## Daily trend" in markdown
    assert "Root/Sandbox/Deep/Deeper" in markdown
    assert '"trend"' in render_json(report)


def test_a_single_scan_and_partial_scans_are_said_plainly(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        when = datetime.now(UTC) - timedelta(hours=2)
        _scan(engine, 15, when)  # day 15: W1 unreadable, so the scan is partial
        report = build_report(engine, days=7)
        assert coverage_line(report) == (
            "Only one complete scan in the period, so there is no trend to show yet."
        )
        _scan(engine, 15, when + timedelta(minutes=30))
        report = build_report(engine, days=7)
        assert coverage_line(report).startswith("Every one of the period's 2 complete scans")
        _scan(engine, 16, when + timedelta(minutes=60), interrupt=True)
        _scan(engine, 16, when + timedelta(minutes=90))  # every account read
        report = build_report(engine, days=1)
        assert coverage_line(report).startswith("3 complete scan(s) on ")
        assert report.health.runs_by_status == {"succeeded": 1, "partial": 2, "interrupted": 1}
    finally:
        engine.dispose()


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


def test_html_renders_in_headless_chromium(month, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/install-test-tools.sh installs it)")
    engine, _ = month
    page = render_html(build_report(engine, days=DAYS, owner_tag="team"))
    assert "<h1>vaultscan compliance report (30 days)</h1>" in page
    assert "By owner (account tag <code>team</code>)" in page
    # self-contained: no script, no external reference of any kind
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in page and "<svg" in page and "<polyline" in page
    source = tmp_path / "report.html"
    source.write_text(page, encoding="utf-8")
    png = Path(__file__).resolve().parents[2] / ".vaultscan" / "report-month.png"
    png.parent.mkdir(exist_ok=True)
    png.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1200,2400",
            f"--screenshot={png}",
            source.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert _png_size(png) == (1200, 2400)
    # a blank page compresses to almost nothing; the rendered report does not
    assert png.stat().st_size > 50_000


def test_grouping_by_the_owner_tag(month) -> None:
    engine, _ = month
    assert build_report(engine, days=DAYS).owners == []  # off unless a tag is configured
    report = build_report(engine, days=DAYS, owner_tag="team")
    owners = {owner.owner: owner for owner in report.owners}
    assert list(owners) == ["payments", "platform", None]  # most failing checks first
    rows = _db(
        engine,
        "SELECT a.tags ->> 'team', count(DISTINCT a.account_id), count(*), "
        "count(*) FILTER (WHERE cs.status = 'fail') FROM check_state cs "
        "JOIN accounts a USING (account_id) WHERE cs.status <> 'gone' GROUP BY 1",
    )
    assert {
        owner: (o.accounts, o.checks_total, o.checks_failed) for owner, o in owners.items()
    } == {owner: (accounts, total, failed) for owner, accounts, total, failed in rows}
    assert (owners["payments"].checks_failed, owners["payments"].failing_accounts) == (4, 1)
    assert owners[None].accounts == 1 and owners[None].checks_failed == 0
    markdown = render_markdown(report)
    assert "## By owner (account tag `team`)" in markdown
    assert "(no team tag)" in markdown
