"""The weekly report against a real database: sandbox scans (moto) before and after drift,
compared with the sandbox's hand-written expectations; escaping; the `report` command."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws
from sqlalchemy import Engine, text, update
from sqlalchemy.orm import Session

from exporters.report import (
    build_report,
    latest_run_warning,
    render_html,
    render_json,
    render_markdown,
)
from scanner import cli
from scanner.aws.ratelimit import Throttle
from scanner.aws.session import AwsSessions
from scanner.config import Settings
from scanner.runner import run_scan
from scanner.sandbox import (
    SandboxOrg,
    break_account,
    repair_account,
    sandbox_settings,
    seed_sandbox_organization,
)
from storage.db import make_engine
from storage.migrate import upgrade
from storage.models import Account, AccountScan, CheckResult, CheckState, ScanRun

HOSTILE = '<script>alert("pwned")</script> | *bold* `tick` [x](javascript:alert(1))'


@dataclass
class Seeded:
    session: boto3.Session
    sandbox: SandboxOrg

    def scan(self, engine: Engine, *only: str) -> int:
        settings = self.settings(*only)
        sessions = AwsSessions(settings, session=self.session, org_throttle=Throttle())
        return run_scan(settings, engine=engine, sessions=sessions).run_id

    def settings(self, *only: str) -> Settings:
        if not only:
            return sandbox_settings(self.sandbox)
        ids = [self.sandbox.by_name(name).account_id for name in only]
        return sandbox_settings(self.sandbox, accounts={"include": ids})


@pytest.fixture(scope="module")
def seeded() -> Iterator[Seeded]:
    """One sandbox for the module (seeding costs seconds); tests that break an account
    repair it before they end."""
    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        yield Seeded(session, seed_sandbox_organization(session))


def _failures(sandbox: SandboxOrg) -> int:
    return sum(len(a.failing(region)) for a in sandbox.accounts for region in sandbox.regions)


def _move_run_back(engine: Engine, run_id: int, days: int) -> None:
    """Make `run_id` (the first run) look `days` days older, with everything it dated."""
    shift = {"run": run_id, "shift": timedelta(days=days)}
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE scan_runs SET started_at = started_at - :shift, "
                "finished_at = finished_at - :shift WHERE id = :run"
            ),
            shift,
        )
        conn.execute(
            text(
                "UPDATE drift_events SET occurred_at = occurred_at - :shift "
                "WHERE scan_run_id = :run"
            ),
            shift,
        )
        conn.execute(
            text(
                "UPDATE check_results SET failing_since = failing_since - :shift "
                "WHERE scan_run_id = :run"
            ),
            shift,
        )
        conn.execute(
            text(
                "UPDATE check_state SET failing_since = failing_since - :shift, "
                "last_changed_at = last_changed_at - :shift "
                "WHERE last_scan_run_id = :run"
            ),
            shift,
        )


def _run(engine: Engine, run_id: int) -> ScanRun:
    with Session(engine) as session:
        return session.get_one(ScanRun, run_id)


def test_week_with_drift_shows_regressions_and_failing_causes_as_planted(seeded, engine):
    sandbox = seeded.sandbox
    regions = set(sandbox.regions)
    total = sandbox.check_count()
    failing_before = _failures(sandbox)
    healthy_before = len(sandbox.healthy_accounts)
    last_week = seeded.scan(engine)
    _move_run_back(engine, last_week, days=8)

    victims = [sandbox.by_name("prod-payments"), sandbox.by_name("workloads-shared")]
    try:
        for victim in victims:
            break_account(seeded.session, sandbox, victim.account_id)
        failing_now = _failures(sandbox)
        this_week = seeded.scan(engine)
        report = build_report(engine, days=7)

        # the period ends at the latest scan; last week's scan is the baseline
        assert report.period_end == _run(engine, this_week).finished_at
        assert (report.now.run_id, report.start.run_id) == (this_week, last_week)
        assert (report.start.checks_total, report.now.checks_total) == (total, total)
        assert report.start.checks_passed == total - failing_before
        assert report.now.checks_passed == total - failing_now
        assert report.start.accounts_compliant == healthy_before
        assert report.now.accounts_compliant == len(sandbox.healthy_accounts)
        assert report.now.accounts_scanned == len(sandbox.accounts)

        # the regression: the victims' checks, in every region, still failing
        expected = {
            (victim.account_id, victim.role_arn, check, tuple(sorted(regions)))
            for victim in victims
            for check in victim.expectation.failing_checks
        }
        assert {
            (c.account_id, c.role_arn, c.check, tuple(c.regions)) for c in report.regressions
        } == expected
        assert {c.account_name for c in report.regressions} == {v.name for v in victims}
        assert all(
            c.status_now == ["fail"] and c.scan_run_id == this_week for c in report.regressions
        )
        assert report.regressed_checks == failing_now - failing_before
        assert (report.fixes, report.fixed_checks) == ([], 0)
        # last week's first sightings ("new") are outside the period
        assert report.other_drift == {}

        _assert_causes_match_the_planted_ones(report, sandbox, victims)
        assert report.failing_checks == failing_now
        assert report.failing_accounts == len(sandbox.accounts) - len(sandbox.healthy_accounts)
        assert (report.unreachable, report.disagreements) == ([], [])
        assert report.health.runs_by_status == {"succeeded": 1}
        assert report.health.last_success_at == report.period_end

        markdown = render_markdown(report)
        regressions = _section(markdown, "## Regressions")
        for victim in victims:
            assert f"{victim.name} ({victim.account_id})" in regressions
        assert "`backup:CreateBackupVault`" in regressions
        legacy = sandbox.by_cause("scp-deny")
        assert "DenyVaults" in _section(markdown, "## Failing now")
        assert legacy.name not in regressions
    finally:
        for victim in victims:
            repair_account(seeded.session, sandbox, victim.account_id)


def _assert_causes_match_the_planted_ones(report, sandbox, victims) -> None:
    by_account: dict[str, list] = {}
    for cause in report.causes:
        for account in cause.accounts:
            by_account.setdefault(account.account_id, []).append((cause, account))
    for planted in sandbox.accounts:
        expectation = planted.expectation
        found = by_account.get(planted.account_id, [])
        if expectation.healthy:
            assert found == [], planted.name
            continue
        assert found, planted.name
        for cause, _account in found:
            assert cause.layer == expectation.layer, planted.name
            assert cause.statement == expectation.statement, planted.name
            assert cause.fix_kind == expectation.fix_kind, planted.name
            if expectation.policy_contains:
                assert expectation.policy_contains in cause.policy, planted.name
            assert cause.fix_summary and cause.fix_example, planted.name
        assert {check for _c, a in found for check in a.checks} == set(
            expectation.failing_checks
        ), planted.name
        assert {region for _c, a in found for region in a.regions} == set(sandbox.regions)
        assert sum(a.failing_checks for _c, a in found) == len(expectation.failing_checks) * len(
            sandbox.regions
        )
        # failing since the first scan (8 days ago) or since the drift (this week)
        longer_than_the_period = planted not in victims
        assert all(
            (a.failing_since < report.period_start) == longer_than_the_period for _c, a in found
        ), planted.name
    # one Deny planted the same way in two accounts is one cause with both accounts
    (frozen,) = [c for c in report.causes if c.policy and "EmergencyFreeze" in c.policy]
    assert {a.account_id for a in frozen.accounts} == {v.account_id for v in victims}
    assert frozen.account_count == 2 and report.causes[0] is frozen  # most accounts first
    assert frozen.fix_statement["Sid"] == "FreezeVaultCreation"


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(heading)
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_html_and_markdown_escape_hostile_text(seeded, engine):
    legacy = seeded.sandbox.by_cause("scp-deny")
    run_id = seeded.scan(engine, legacy.name)
    hostile_statement = {"Sid": "</code></pre><script>x()</script>", "Note": "```\n# not a title"}
    with engine.begin() as conn:
        conn.execute(
            update(Account)
            .where(Account.account_id == legacy.account_id)
            .values(name=HOSTILE, ou_path_names=HOSTILE)
        )
        conn.execute(
            update(CheckResult)
            .where(CheckResult.scan_run_id == run_id)
            .values(
                remediation=text(
                    "jsonb_set(jsonb_set(remediation, '{summary}', to_jsonb(CAST(:s AS text))),"
                    " '{statement}', CAST(:d AS jsonb))"
                ).bindparams(s=HOSTILE, d=json.dumps(hostile_statement))
            )
        )
    report = build_report(engine)
    assert report.causes[0].accounts[0].account_name == HOSTILE  # it is in the report

    page = render_html(report)
    assert "<script" not in page and "<a " not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;x()&lt;/script&gt;" in page
    assert page.count("<pre>") == page.count("</pre>")

    markdown = render_markdown(report)
    prose = _outside_code_blocks(markdown)  # code blocks show their content literally
    assert "<script" not in prose and not re.search(r"(?<!\\)\]\(javascript", prose)
    assert "&lt;script&gt;" in prose
    # the table row keeps its five cells: the name's | is escaped
    row = next(
        line
        for line in markdown.splitlines()
        if line.startswith("| ")
        and "`backup:CreateBackupVault`" in line
        and legacy.account_id in line
    )
    assert len(re.findall(r"(?<!\\)\|", row)) == 6
    # the statement's ``` cannot close the code block early
    fences = re.findall(r"^(`{3,})json$", markdown, flags=re.MULTILINE)
    assert fences and all(len(fence) > 3 for fence in fences)
    assert "\n# not a title" not in markdown.split(fences[0] + "json")[0]


def _outside_code_blocks(markdown: str) -> str:
    kept, fence = [], None
    for line in markdown.splitlines():
        opening = re.match(r"^(`{3,})", line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            kept.append(line)
    assert fence is None, "a code block is left open"
    return "\n".join(kept)


def test_command_prints_and_writes_every_format(
    seeded, database_url, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no vaultscan.yaml from the working directory
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)
    upgrade(database_url)
    engine = make_engine(database_url)
    legacy = seeded.sandbox.by_cause("scp-deny")
    seeded.scan(engine, legacy.name, "prod-payments")
    base = ["report", "--database-url", database_url]

    assert cli.main(base) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# vaultscan weekly report\n")
    assert f"{legacy.name} ({legacy.account_id})" in printed

    for fmt, name in (("markdown", "r.md"), ("html", "r.html"), ("json", "r.json")):
        target = tmp_path / name
        assert cli.main([*base, "--format", fmt, "--output", str(target), "--days", "3"]) == 0
        out, err = capsys.readouterr()
        assert out == "" and str(target) in err
        assert legacy.account_id in target.read_text(encoding="utf-8")
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    data = json.loads((tmp_path / "r.json").read_text())
    expected = len(legacy.expectation.failing_checks) * len(seeded.sandbox.regions)
    assert data["days"] == 3 and data["now"]["checks_failed"] == expected
    assert data["causes"][0]["statement"] == legacy.expectation.statement
    engine.dispose()


def test_command_exits_2_without_a_finished_scan(database_url, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)
    target = tmp_path / "report.md"
    argv = ["report", "--database-url", database_url, "--output", str(target)]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no finished scan in the database" in err and "vaultscan scan" in err
    assert not target.exists()

    # a run still in progress is not a finished scan either
    engine = make_engine(database_url)
    with Session(engine) as session, session.begin():
        session.add(ScanRun(status="running"))
    assert cli.main(argv) == 2
    assert "no finished scan" in capsys.readouterr().err
    engine.dispose()

    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--days", "0"])
    assert exit_info.value.code == 2


def test_unreachable_accounts_disagreements_and_a_failed_latest_scan(engine):
    """Sections the sandbox does not produce, from rows written straight to the schema."""
    end = datetime.now(UTC) - timedelta(hours=1)
    role = "arn:aws:iam::222222222222:role/BackupRole"
    with Session(engine) as session, session.begin():
        old = ScanRun(
            status="succeeded",
            started_at=end - timedelta(days=10),
            finished_at=end - timedelta(days=10) + timedelta(seconds=30),
        )
        partial = ScanRun(
            status="partial",
            started_at=end - timedelta(days=1),
            finished_at=end - timedelta(days=1) + timedelta(seconds=60),
            accounts_total=2,
            accounts_scanned=1,
            accounts_errored=1,
            checks_total=1,
            checks_passed=1,
            disagreements=1,
        )
        failed = ScanRun(
            status="failed",
            started_at=end - timedelta(seconds=20),
            finished_at=end,
            error="organization unreadable",
        )
        session.add_all([old, partial, failed])
        session.flush()
        session.add_all(
            [
                Account(account_id="111111111111", name="dev-ops", ou_path_names="Root/Dev"),
                Account(account_id="222222222222", name="prod-core", ou_path_names="Root/Prod"),
            ]
        )
        session.flush()
        session.add_all(
            [
                AccountScan(
                    scan_run_id=partial.id,
                    account_id="111111111111",
                    status="error",
                    error="AccessDenied: sts:AssumeRole on VaultscanReadRole",
                ),
                AccountScan(scan_run_id=partial.id, account_id="222222222222", status="ok"),
            ]
        )
        result = CheckResult(
            scan_run_id=partial.id,
            check_key="k",
            account_id="222222222222",
            region="eu-west-1",
            role_arn=role,
            check="kms:Decrypt",
            status="pass",
            decision="allowed",
            simulator_decision="implicitDeny",
            disagreement=True,
            message="the simulator denies what the engine allows",
        )
        session.add(result)
        session.flush()
        session.add(
            CheckState(
                check_key="k",
                account_id="222222222222",
                region="eu-west-1",
                role_arn=role,
                check="kms:Decrypt",
                status="pass",
                disagreement=True,
                last_result_id=result.id,
                last_scan_run_id=partial.id,
            )
        )
        ids = (old.id, partial.id, failed.id)

    report = build_report(engine, days=7)
    assert (report.latest_run_id, report.latest_run_status) == (ids[2], "failed")
    assert (report.now.run_id, report.start.run_id) == (ids[1], ids[0])
    assert "organization unreadable" in latest_run_warning(report)
    assert f"run #{ids[1]}" in latest_run_warning(report)
    assert report.now.accounts_compliant == 1 and report.now.accounts_errored == 1
    assert [(a.account_id, a.error) for a in report.unreachable] == [
        ("111111111111", "AccessDenied: sts:AssumeRole on VaultscanReadRole")
    ]
    assert [
        (d.account_name, d.check, d.decision, d.simulator_decision) for d in report.disagreements
    ] == [("prod-core", "kms:Decrypt", "allowed", "implicitDeny")]
    assert report.health.runs_by_status == {"partial": 1, "failed": 1}
    assert report.health.last_success_at == _run(engine, ids[0]).finished_at
    assert report.health.average_seconds == pytest.approx(40)

    markdown = render_markdown(report)
    assert markdown.index("**Warning:**") < markdown.index("## Compliance")
    assert "AccessDenied: sts:AssumeRole on VaultscanReadRole" in _section(
        markdown, "## Unreachable accounts"
    )
    assert "prod-core" in _section(markdown, "## Simulator disagreements (1)")
    data = json.loads(render_json(report))
    assert data["unreachable"][0]["account_name"] == "dev-ops"
    assert data["health"]["runs"] == 2


def test_latest_run_warning_reads_as_a_sentence() -> None:
    from types import SimpleNamespace

    failed = SimpleNamespace(
        latest_run_id=5,
        latest_run_status="failed",
        now=SimpleNamespace(run_id=2),
        latest_run_error="organizations:DescribeOrganization failed: see docs/read-role.md.",
    )
    assert latest_run_warning(failed) == (
        "The latest scan (run #5) failed: organizations:DescribeOrganization failed: see "
        "docs/read-role.md. Compliance figures come from run #2."
    )
    interrupted = SimpleNamespace(
        latest_run_id=3, latest_run_status="interrupted", now=None, latest_run_error=None
    )
    assert latest_run_warning(interrupted) == (
        "The latest scan (run #3) was interrupted. Compliance figures come from no complete scan."
    )
