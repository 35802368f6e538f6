"""The weekly report: how compliance moved over the last N days and what to fix first.

`build_report` reads the database (one read-only snapshot) into a `Report`, a plain
dataclass; `render_markdown`, `render_html` and `render_json` turn it into text. Every
list is grouped and capped, so the report stays short for any size of organization: the
queries aggregate in PostgreSQL and return at most one row per (cause, account).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, distinct, func, select, text

from storage.models import Account, AccountScan, CheckResult, CheckState, DriftEvent, ScanRun
from storage.repository import latest_run

DEFAULT_DAYS = 7
DEFAULT_LIMIT = 50  # rows per list (regressions, fixes, causes, ...); the rest are counted
ACCOUNTS_PER_CAUSE = 25
COMPLETE_STATUSES = ("succeeded", "partial")  # runs that read the whole organization
RUN_STATUSES = ("succeeded", "partial", "failed", "interrupted", "running")
STATEMENT_TIMEOUT_MS = 60_000
FIX_DETAILS_TITLE = "Statement and commands"
OTHER_DRIFT_WORDS = {
    "new": "new check(s) (first scanned)",
    "gone": "check(s) gone (role, key or account no longer scanned)",
    "error": "check(s) turned to error",
}

LAYER_LABELS = {
    "identity": "Identity policy",
    "permissions_boundary": "Permissions boundary",
    "scp": "SCP",
    "rcp": "RCP",
    "resource_policy": "KMS key policy",
    None: "Key or account state",
}


class NoFinishedScan(LookupError):
    """The database holds no finished scan: there is nothing to report on."""


# --- the report data --------------------------------------------------------------------


@dataclass
class Compliance:
    """What one complete scan found."""

    run_id: int
    finished_at: datetime
    status: str
    checks_total: int
    checks_passed: int
    checks_failed: int
    checks_errored: int
    accounts_scanned: int  # read successfully
    accounts_compliant: int  # read, and every check passed
    accounts_errored: int  # could not be read

    @property
    def pass_ratio(self) -> float | None:
        return self.checks_passed / self.checks_total if self.checks_total else None


@dataclass
class DriftChange:
    """Checks of one account, role and check that regressed (or were fixed) in one scan."""

    kind: str  # regressed, fixed
    occurred_at: datetime
    scan_run_id: int
    account_id: str
    account_name: str
    role_arn: str
    check: str
    regions: list[str]
    checks: int  # drift events (one per region)
    status_now: list[str]  # the current status of those checks


@dataclass
class AffectedAccount:
    account_id: str
    account_name: str
    ou_path_names: str
    checks: list[str]
    regions: list[str]
    failing_checks: int
    failing_since: datetime | None


@dataclass
class FailingCause:
    """Checks failing now for the same reason: deciding layer, policy, statement, fix."""

    layer: str | None
    policy: str | None
    statement: str | None
    fix_kind: str | None
    failing_checks: int
    account_count: int
    failing_since: datetime | None  # the longest-failing of its checks
    checks: list[str]
    accounts: list[AffectedAccount]  # longest-failing first, capped
    fix_summary: str = ""
    fix_statement: Any = None  # the JSON to add, or the corrected statement
    fix_commands: list[str] = field(default_factory=list)
    fix_example: str = ""  # the account and region the fix text was written for

    @property
    def layer_label(self) -> str:
        return LAYER_LABELS.get(self.layer, self.layer or "")


@dataclass
class UnreachableAccount:
    account_id: str
    account_name: str
    ou_path_names: str
    error: str


@dataclass
class Disagreement:
    account_id: str
    account_name: str
    region: str
    role_arn: str
    check: str
    decision: str | None  # vaultscan's engine
    simulator_decision: str | None
    message: str


@dataclass
class ScanHealth:
    runs_by_status: dict[str, int]  # runs started in the period
    last_success_at: datetime | None  # finished_at of the latest succeeded run, ever
    average_seconds: float | None  # finished runs of the period
    longest_seconds: float | None

    @property
    def runs(self) -> int:
        return sum(self.runs_by_status.values())


@dataclass
class Report:
    days: int
    period_start: datetime
    period_end: datetime  # finished_at of the latest finished scan
    generated_at: datetime
    latest_run_id: int
    latest_run_status: str
    latest_run_error: str | None
    now: Compliance | None  # the latest complete scan
    start: Compliance | None  # the latest complete scan finished before the period
    regressions: list[DriftChange]
    regressions_total: int  # rows regressions would have without the cap
    regressed_checks: int
    fixes: list[DriftChange]
    fixes_total: int
    fixed_checks: int
    other_drift: dict[str, int]  # new, gone, error events in the period
    causes: list[FailingCause]
    causes_total: int
    failing_checks: int
    failing_accounts: int
    unreachable_run_id: int | None
    unreachable: list[UnreachableAccount]
    unreachable_total: int
    disagreements: list[Disagreement]
    disagreements_total: int
    health: ScanHealth


# --- reading the database ---------------------------------------------------------------


def build_report(
    engine: Engine,
    *,
    days: int = DEFAULT_DAYS,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
) -> Report:
    """The report for the `days` days ending at the latest finished scan.

    Raises NoFinishedScan when no scan has finished yet."""
    if days < 1:
        raise ValueError("days must be at least 1")
    last = latest_run(engine, finished_only=True)
    if last is None or last.finished_at is None:
        raise NoFinishedScan("the database holds no finished scan")
    end = last.finished_at.astimezone(UTC)
    start = end - timedelta(days=days)
    with engine.connect() as conn:
        # One snapshot for every query: the numbers of one report agree.
        conn.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        now_run = _complete_run(conn, finished_by=end)
        start_run = _complete_run(conn, finished_by=start)
        regressions, regressions_total, regressed = _drift_changes(
            conn, "regressed", start, end, limit
        )
        fixes, fixes_total, fixed = _drift_changes(conn, "fixed", start, end, limit)
        causes = _failing_causes(conn)
        unreachable_run = now_run.id if now_run is not None else last.id
        unreachable = _unreachable_accounts(conn, unreachable_run)
        disagreements, disagreements_total = _disagreements(conn, limit)
        report = Report(
            days=days,
            period_start=start,
            period_end=end,
            generated_at=(now or datetime.now(UTC)).astimezone(UTC),
            latest_run_id=last.id,
            latest_run_status=last.status,
            latest_run_error=last.error,
            now=_compliance(conn, now_run) if now_run is not None else None,
            start=_compliance(conn, start_run) if start_run is not None else None,
            regressions=regressions,
            regressions_total=regressions_total,
            regressed_checks=regressed,
            fixes=fixes,
            fixes_total=fixes_total,
            fixed_checks=fixed,
            other_drift=_other_drift(conn, start, end),
            causes=causes[:limit],
            causes_total=len(causes),
            failing_checks=sum(cause.failing_checks for cause in causes),
            failing_accounts=_failing_accounts(conn),
            unreachable_run_id=unreachable_run,
            unreachable=unreachable[:limit],
            unreachable_total=len(unreachable),
            disagreements=disagreements,
            disagreements_total=disagreements_total,
            health=_scan_health(conn, start, end),
        )
        conn.rollback()
    return report


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _complete_run(conn: Connection, *, finished_by: datetime) -> Any:
    """The latest run that read the whole organization and finished by `finished_by`."""
    return conn.execute(
        select(ScanRun)
        .where(ScanRun.status.in_(COMPLETE_STATUSES), ScanRun.finished_at <= finished_by)
        .order_by(ScanRun.finished_at.desc(), ScanRun.id.desc())
        .limit(1)
    ).first()


def _compliance(conn: Connection, run: Any) -> Compliance:
    not_passing = (
        select(CheckResult.id)
        .where(
            CheckResult.scan_run_id == run.id,
            CheckResult.account_id == AccountScan.account_id,
            CheckResult.status != "pass",
        )
        .exists()
    )
    compliant = conn.execute(
        select(func.count())
        .select_from(AccountScan)
        .where(AccountScan.scan_run_id == run.id, AccountScan.status == "ok", ~not_passing)
    ).scalar_one()
    return Compliance(
        run_id=run.id,
        finished_at=_utc(run.finished_at),
        status=run.status,
        checks_total=run.checks_total,
        checks_passed=run.checks_passed,
        checks_failed=run.checks_failed,
        checks_errored=run.checks_errored,
        accounts_scanned=run.accounts_scanned,
        accounts_compliant=compliant,
        accounts_errored=run.accounts_errored,
    )


def _in_period(start: datetime, end: datetime) -> list[Any]:
    return [DriftEvent.occurred_at > start, DriftEvent.occurred_at <= end]


def _drift_changes(
    conn: Connection, kind: str, start: datetime, end: datetime, limit: int
) -> tuple[list[DriftChange], int, int]:
    """Events of one kind in the period, one row per run, account, role and check (newest
    first, capped); with the number of such rows and of events."""
    keys = (
        DriftEvent.scan_run_id,
        DriftEvent.account_id,
        DriftEvent.role_arn,
        DriftEvent.check,
    )
    conditions = [DriftEvent.kind == kind, *_in_period(start, end)]
    grouped = (
        select(
            *keys,
            func.max(Account.name).label("account_name"),
            func.max(DriftEvent.occurred_at).label("occurred_at"),
            func.array_agg(distinct(DriftEvent.region)).label("regions"),
            func.count().label("checks"),
            func.array_agg(distinct(func.coalesce(CheckState.status, "gone"))).label("now"),
        )
        .select_from(DriftEvent)
        .outerjoin(Account, Account.account_id == DriftEvent.account_id)
        .outerjoin(CheckState, CheckState.check_key == DriftEvent.check_key)
        .where(*conditions)
        .group_by(*keys)
        .order_by(func.max(DriftEvent.occurred_at).desc(), *keys)
        .limit(limit)
    )
    changes = [
        DriftChange(
            kind=kind,
            occurred_at=_utc(row.occurred_at),
            scan_run_id=row.scan_run_id,
            account_id=row.account_id,
            account_name=row.account_name or "",
            role_arn=row.role_arn,
            check=row.check,
            regions=sorted(row.regions),
            checks=row.checks,
            status_now=sorted(row.now),
        )
        for row in conn.execute(grouped)
    ]
    counted = select(*keys).where(*conditions).group_by(*keys).subquery()
    rows = conn.execute(select(func.count()).select_from(counted)).scalar_one()
    events = conn.execute(
        select(func.count()).select_from(DriftEvent).where(*conditions)
    ).scalar_one()
    return changes, rows, events


def _other_drift(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    rows = conn.execute(
        select(DriftEvent.kind, func.count())
        .where(DriftEvent.kind.in_(("new", "gone", "error")), *_in_period(start, end))
        .group_by(DriftEvent.kind)
    )
    return {kind: count for kind, count in rows}


def _fix_kind() -> Any:
    return CheckResult.remediation["kind"].astext


def _cause_columns() -> tuple[Any, ...]:
    return (CheckState.deciding_layer, CheckState.policy, CheckState.statement, _fix_kind())


def _failing_causes(conn: Connection) -> list[FailingCause]:
    """The checks failing now, grouped by cause; most accounts first."""
    causes: dict[tuple[Any, ...], FailingCause] = {}
    for row in conn.execute(_failing_per_account()):
        key = (row.deciding_layer, row.policy, row.statement, row.fix_kind)
        cause = causes.setdefault(key, FailingCause(*key, 0, 0, None, [], []))
        account = AffectedAccount(
            account_id=row.account_id,
            account_name=row.account_name or "",
            ou_path_names=row.ou_path_names or "",
            checks=sorted(row.checks),
            regions=sorted(row.regions),
            failing_checks=row.failing_checks,
            failing_since=_utc(row.failing_since),
        )
        cause.failing_checks += account.failing_checks
        cause.account_count += 1
        cause.checks = sorted(set(cause.checks) | set(account.checks))
        cause.failing_since = _earliest(cause.failing_since, account.failing_since)
        cause.accounts.append(account)
    for row in conn.execute(_fix_examples()):
        cause = causes.get((row.deciding_layer, row.policy, row.statement, row.fix_kind))
        if cause is not None:
            _set_fix(cause, row)
    for cause in causes.values():
        cause.accounts.sort(key=_longest_failing_first)
        cause.accounts = cause.accounts[:ACCOUNTS_PER_CAUSE]
    return sorted(causes.values(), key=_most_important_first)


def _failing_per_account() -> Any:
    columns = _cause_columns()
    return (
        select(
            *columns[:3],
            columns[3].label("fix_kind"),
            CheckState.account_id,
            func.max(Account.name).label("account_name"),
            func.max(Account.ou_path_names).label("ou_path_names"),
            func.count().label("failing_checks"),
            func.min(CheckState.failing_since).label("failing_since"),
            func.array_agg(distinct(CheckState.check)).label("checks"),
            func.array_agg(distinct(CheckState.region)).label("regions"),
        )
        .select_from(CheckState)
        .outerjoin(CheckResult, CheckResult.id == CheckState.last_result_id)
        .outerjoin(Account, Account.account_id == CheckState.account_id)
        .where(CheckState.status == "fail")
        .group_by(*columns, CheckState.account_id)
    )


def _fix_examples() -> Any:
    """For every cause, the fix of its longest-failing check."""
    columns = _cause_columns()
    rank = func.row_number().over(
        partition_by=columns, order_by=(CheckState.failing_since, CheckState.check_key)
    )
    ranked = (
        select(
            *columns[:3],
            columns[3].label("fix_kind"),
            CheckState.account_id,
            Account.name.label("account_name"),
            CheckState.region,
            CheckResult.remediation,
            rank.label("rank"),
        )
        .select_from(CheckState)
        .join(CheckResult, CheckResult.id == CheckState.last_result_id)
        .outerjoin(Account, Account.account_id == CheckState.account_id)
        .where(CheckState.status == "fail")
        .subquery()
    )
    return select(ranked).where(ranked.c.rank == 1)


def _set_fix(cause: FailingCause, row: Any) -> None:
    fix = row.remediation or {}
    cause.fix_summary = str(fix.get("summary") or "")
    cause.fix_statement = fix.get("statement")
    commands = fix.get("commands") or []
    cause.fix_commands = [str(command) for command in commands if command]
    cause.fix_example = f"{row.account_name or row.account_id} ({row.account_id}), {row.region}"


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    present = [value for value in (first, second) if value is not None]
    return min(present) if present else None


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else float("inf")


def _longest_failing_first(account: AffectedAccount) -> tuple[Any, ...]:
    return (_timestamp(account.failing_since), account.account_name, account.account_id)


def _most_important_first(cause: FailingCause) -> tuple[Any, ...]:
    return (
        -cause.account_count,
        -cause.failing_checks,
        _timestamp(cause.failing_since),
        cause.layer or "",
        cause.policy or "",
        cause.statement or "",
        cause.fix_kind or "",
    )


def _failing_accounts(conn: Connection) -> int:
    return conn.execute(
        select(func.count(distinct(CheckState.account_id))).where(CheckState.status == "fail")
    ).scalar_one()


def _unreachable_accounts(conn: Connection, run_id: int) -> list[UnreachableAccount]:
    rows = conn.execute(
        select(AccountScan.account_id, AccountScan.error, Account.name, Account.ou_path_names)
        .outerjoin(Account, Account.account_id == AccountScan.account_id)
        .where(AccountScan.scan_run_id == run_id, AccountScan.status == "error")
        .order_by(Account.name, AccountScan.account_id)
    )
    return [
        UnreachableAccount(
            account_id=row.account_id,
            account_name=row.name or "",
            ou_path_names=row.ou_path_names or "",
            error=row.error or "no reason recorded",
        )
        for row in rows
    ]


def _disagreements(conn: Connection, limit: int) -> tuple[list[Disagreement], int]:
    current = [CheckState.disagreement.is_(True), CheckState.status != "gone"]
    rows = conn.execute(
        select(
            CheckState.account_id,
            Account.name,
            CheckState.region,
            CheckState.role_arn,
            CheckState.check,
            CheckResult.decision,
            CheckResult.simulator_decision,
            CheckResult.message,
        )
        .select_from(CheckState)
        .outerjoin(CheckResult, CheckResult.id == CheckState.last_result_id)
        .outerjoin(Account, Account.account_id == CheckState.account_id)
        .where(*current)
        .order_by(Account.name, CheckState.account_id, CheckState.region, CheckState.check)
        .limit(limit)
    )
    found = [
        Disagreement(
            account_id=row.account_id,
            account_name=row.name or "",
            region=row.region,
            role_arn=row.role_arn,
            check=row.check,
            decision=row.decision,
            simulator_decision=row.simulator_decision,
            message=row.message or "",
        )
        for row in rows
    ]
    total = conn.execute(select(func.count()).select_from(CheckState).where(*current))
    return found, total.scalar_one()


def _scan_health(conn: Connection, start: datetime, end: datetime) -> ScanHealth:
    in_period = [ScanRun.started_at >= start, ScanRun.started_at <= end]
    by_status = dict(
        conn.execute(
            select(ScanRun.status, func.count()).where(*in_period).group_by(ScanRun.status)
        ).all()
    )
    seconds = func.extract("epoch", ScanRun.finished_at - ScanRun.started_at)
    average, longest = conn.execute(
        select(func.avg(seconds), func.max(seconds)).where(
            *in_period, ScanRun.finished_at.is_not(None)
        )
    ).one()
    last_success = conn.execute(
        select(func.max(ScanRun.finished_at)).where(ScanRun.status == "succeeded")
    ).scalar_one()
    return ScanHealth(
        runs_by_status={status: by_status[status] for status in _status_order(by_status)},
        last_success_at=_utc(last_success),
        average_seconds=float(average) if average is not None else None,
        longest_seconds=float(longest) if longest is not None else None,
    )


def _status_order(statuses: Iterable[str]) -> list[str]:
    known = [status for status in RUN_STATUSES if status in statuses]
    return known + sorted(set(statuses) - set(RUN_STATUSES))


# --- formatting helpers shared by the renderers -----------------------------------------


def format_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def format_age(since: datetime | None, until: datetime) -> str:
    """How long from `since` to `until`, to the two largest units: "3 d 4 h"."""
    if since is None:
        return "unknown"
    minutes = max(0, int((until - since).total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "under 1 min"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def format_ratio(part: int, whole: int) -> str:
    if not whole:
        return f"{part} / {whole}"
    return f"{part} / {whole} ({100 * part / whole:.1f}%)"


def format_change(now: int, before: int | None) -> str:
    if before is None:
        return "n/a"
    delta = now - before
    return f"{delta:+d}" if delta else "no change"


def role_name(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1] if role_arn else ""


def account_label(name: str, account_id: str) -> str:
    return f"{name} ({account_id})" if name else account_id


def cause_title(cause: FailingCause) -> str:
    if cause.layer is None and cause.policy is None:
        return f"{cause.layer_label}: {', '.join(cause.checks)} ({cause.fix_kind or 'no fix'})"
    policy = cause.policy or "no policy allows the action"
    statement = f", statement {cause.statement}" if cause.statement else ""
    return f"{cause.layer_label}: {policy}{statement}"


def headline_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """(measure, now, at the start of the period, change)."""
    now, start = report.now, report.start
    if now is None:
        return []
    return [
        (
            "Checks passing",
            format_ratio(now.checks_passed, now.checks_total),
            format_ratio(start.checks_passed, start.checks_total) if start else "n/a",
            format_change(now.checks_passed, start.checks_passed if start else None),
        ),
        (
            "Accounts fully compliant",
            format_ratio(now.accounts_compliant, now.accounts_scanned),
            format_ratio(start.accounts_compliant, start.accounts_scanned) if start else "n/a",
            format_change(now.accounts_compliant, start.accounts_compliant if start else None),
        ),
        (
            "Checks failing",
            str(now.checks_failed),
            str(start.checks_failed) if start else "n/a",
            format_change(now.checks_failed, start.checks_failed if start else None),
        ),
        (
            "Accounts unreachable",
            str(now.accounts_errored),
            str(start.accounts_errored) if start else "n/a",
            format_change(now.accounts_errored, start.accounts_errored if start else None),
        ),
    ]


def summary_lines(report: Report) -> list[str]:
    """The few sentences a reader needs first (plain text; the renderers escape them)."""
    lines = []
    if report.regressed_checks:
        accounts = len({change.account_id for change in report.regressions})
        more = "+" if report.regressions_total > len(report.regressions) else ""
        lines.append(
            f"{report.regressed_checks} check(s) regressed in {accounts}{more} account(s); "
            f"{report.fixed_checks} fixed."
        )
    else:
        lines.append(f"No regression in the period; {report.fixed_checks} check(s) fixed.")
    lines.append(
        f"{report.failing_checks} check(s) fail now in {report.failing_accounts} account(s), "
        f"from {report.causes_total} cause(s)."
    )
    if report.unreachable_total:
        lines.append(f"{report.unreachable_total} account(s) could not be read.")
    if report.disagreements_total:
        lines.append(
            f"{report.disagreements_total} check(s) where the IAM policy simulator and "
            "vaultscan's engine disagree."
        )
    return lines


def latest_run_warning(report: Report) -> str | None:
    if report.latest_run_status in COMPLETE_STATUSES:
        return None
    reason = f": {report.latest_run_error}" if report.latest_run_error else ""
    source = f"run #{report.now.run_id}" if report.now else "no complete scan"
    return (
        f"The latest scan (run #{report.latest_run_id}) is {report.latest_run_status}{reason}. "
        f"Compliance figures come from {source}."
    )


def health_line(health: ScanHealth) -> str:
    statuses = ", ".join(f"{count} {status}" for status, count in health.runs_by_status.items())
    return f"{health.runs} scan(s) in the period" + (f" ({statuses})" if statuses else "")


def other_drift_line(report: Report) -> str | None:
    parts = [
        f"{report.other_drift[kind]} {words}"
        for kind, words in OTHER_DRIFT_WORDS.items()
        if report.other_drift.get(kind)
    ]
    return "Also in the period: " + ", ".join(parts) + "." if parts else None


def cause_overview_rows(report: Report) -> list[tuple[str, ...]]:
    """(number, cause, accounts, failing checks, failing for, fix kind)."""
    return [
        (
            str(number),
            cause_title(cause),
            _some_accounts(cause),
            str(cause.failing_checks),
            format_age(cause.failing_since, report.period_end) + _new_marker(cause, report),
            cause.fix_kind or "",
        )
        for number, cause in enumerate(report.causes, start=1)
    ]


def _new_marker(cause: FailingCause, report: Report) -> str:
    started = cause.failing_since
    return " (new)" if started is not None and started > report.period_start else ""


def _some_accounts(cause: FailingCause, shown: int = 3) -> str:
    names = [account.account_name or account.account_id for account in cause.accounts[:shown]]
    more = f" +{cause.account_count - len(names)}" if cause.account_count > len(names) else ""
    return f"{cause.account_count}: {', '.join(names)}{more}"


CAUSE_OVERVIEW_HEADERS = ["#", "Cause", "Accounts", "Checks", "Failing for", "Fix"]


def statement_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, default=str)


# --- Markdown ---------------------------------------------------------------------------

_MD_ESCAPED = re.compile(r"([\\`*_\[\]|#~])")


def md(value: Any) -> str:
    """Text safe in a Markdown paragraph or table cell: one line, no markup, no HTML."""
    flat = " ".join(str(value).split())
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_ESCAPED.sub(r"\\\1", flat)


def md_code(value: Any) -> str:
    """An inline code span holding `value` literally (safe in a table cell too)."""
    flat = " ".join(str(value).split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    return f"{fence}{padding}{flat}{padding}{fence}"


def md_block(content: str, language: str = "") -> list[str]:
    longest = max((len(run) for run in re.findall(r"`{3,}", content)), default=2)
    fence = "`" * (longest + 1)
    return [f"{fence}{language}", *content.splitlines(), fence]


def md_table(headers: list[str], rows: Iterable[Iterable[str]]) -> list[str]:
    """Cells must already be escaped (md or md_code)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def md_more(shown: int, total: int, what: str) -> list[str]:
    return ["", f"… and {total - shown} more {what}."] if total > shown else []


def render_markdown(report: Report) -> str:
    sections: list[Callable[[Report], list[str]]] = [
        _md_header,
        _md_headline,
        _md_drift,
        _md_causes,
        _md_unreachable,
        _md_disagreements,
        _md_health,
    ]
    lines: list[str] = []
    for section in sections:
        lines += section(report)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _md_header(report: Report) -> list[str]:
    lines = [
        "# vaultscan weekly report",
        "",
        f"Period: {format_time(report.period_start)} to {format_time(report.period_end)} "
        f"({report.days} days), ending at scan run #{report.latest_run_id} "
        f"({md(report.latest_run_status)}).",
    ]
    warning = latest_run_warning(report)
    if warning:
        lines += ["", f"> **Warning:** {md(warning)}"]
    lines.append("")
    lines += [f"- {md(line)}" for line in summary_lines(report)]
    return lines


def _md_headline(report: Report) -> list[str]:
    lines = ["## Compliance", ""]
    if report.now is None:
        return lines + ["No complete scan yet: every scan so far failed or was interrupted."]
    start = f"run #{report.start.run_id}" if report.start else "no scan before the period"
    headers = ["", f"Now (run #{report.now.run_id})", f"Start of period ({start})", "Change"]
    lines += md_table(headers, ([md(cell) for cell in row] for row in headline_rows(report)))
    if report.now.checks_errored:
        lines += ["", f"{report.now.checks_errored} check(s) could not be decided (error)."]
    return lines


def _md_drift(report: Report) -> list[str]:
    lines = [f"## Regressions ({report.regressed_checks} checks)", ""]
    lines += _md_changes(report.regressions, report.regressions_total, "no regression")
    lines += ["", f"## Fixes ({report.fixed_checks} checks)", ""]
    lines += _md_changes(report.fixes, report.fixes_total, "no fix")
    other = other_drift_line(report)
    return lines + (["", md(other)] if other else [])


def _md_changes(changes: list[DriftChange], total: int, none: str) -> list[str]:
    if not changes:
        return [f"{none.capitalize()} in the period."]
    rows = (
        [
            md(format_time(change.occurred_at)),
            md(account_label(change.account_name, change.account_id)),
            md(", ".join(change.regions)),
            md_code(role_name(change.role_arn)),
            md_code(change.check),
            md(", ".join(change.status_now)),
        ]
        for change in changes
    )
    headers = ["When", "Account", "Regions", "Role", "Check", "Status now"]
    return md_table(headers, rows) + md_more(len(changes), total, "rows")


def _md_causes(report: Report) -> list[str]:
    lines = [
        f"## Failing now, by cause ({report.failing_checks} checks in "
        f"{report.failing_accounts} accounts)",
    ]
    if not report.causes:
        return lines + ["", "Nothing fails."]
    overview = ([md(cell) for cell in row] for row in cause_overview_rows(report))
    lines += ["", *md_table(CAUSE_OVERVIEW_HEADERS, overview)]
    for number, cause in enumerate(report.causes, start=1):
        lines += ["", *_md_cause(number, cause, report.period_end)]
    return lines + md_more(len(report.causes), report.causes_total, "causes")


def _md_cause(number: int, cause: FailingCause, until: datetime) -> list[str]:
    lines = [
        f"### {number}. {md(cause_title(cause))}",
        "",
        f"{cause.failing_checks} failing check(s) in {cause.account_count} account(s): "
        f"{', '.join(md_code(check) for check in cause.checks)}; failing for "
        f"{md(format_age(cause.failing_since, until))} (since "
        f"{md(format_time(cause.failing_since))}).",
        "",
        f"**Fix** ({md_code(cause.fix_kind or 'none')}): "
        f"{md(cause.fix_summary or 'none recorded')}",
    ]
    if cause.fix_example:
        lines[-1] += f" _(written for {md(cause.fix_example)})_"
    rows = (
        [
            md(account_label(account.account_name, account.account_id)),
            md(account.ou_path_names),
            ", ".join(md_code(check) for check in account.checks),
            md(", ".join(account.regions)),
            md(format_age(account.failing_since, until)),
        ]
        for account in cause.accounts
    )
    lines += ["", *md_table(["Account", "OU", "Checks", "Regions", "Failing for"], rows)]
    lines += md_more(len(cause.accounts), cause.account_count, "accounts")
    return lines + _md_fix_details(cause)


def _md_fix_details(cause: FailingCause) -> list[str]:
    blocks = []
    if cause.fix_statement is not None:
        blocks.append(md_block(statement_json(cause.fix_statement), "json"))
    if cause.fix_commands:
        blocks.append(md_block("\n".join(cause.fix_commands), "sh"))
    if not blocks:
        return []
    lines = ["", f"<details><summary>{FIX_DETAILS_TITLE}</summary>"]
    for block in blocks:
        lines += ["", *block]
    return lines + ["", "</details>"]


def _md_unreachable(report: Report) -> list[str]:
    run = f" (run #{report.unreachable_run_id})" if report.unreachable_run_id else ""
    lines = [f"## Unreachable accounts{run}", ""]
    if not report.unreachable:
        return lines + ["Every account could be read."]
    rows = (
        [md(account_label(a.account_name, a.account_id)), md(a.ou_path_names), md(a.error)]
        for a in report.unreachable
    )
    lines += md_table(["Account", "OU", "Reason"], rows)
    return lines + md_more(len(report.unreachable), report.unreachable_total, "accounts")


def _md_disagreements(report: Report) -> list[str]:
    lines = [f"## Simulator disagreements ({report.disagreements_total})", ""]
    if not report.disagreements:
        return lines + ["The IAM policy simulator agrees with vaultscan's engine on every check."]
    rows = (
        [
            md(account_label(d.account_name, d.account_id)),
            md(d.region),
            md_code(role_name(d.role_arn)),
            md_code(d.check),
            md(d.decision or "n/a"),
            md(d.simulator_decision or "n/a"),
            md(d.message),
        ]
        for d in report.disagreements
    )
    headers = ["Account", "Region", "Role", "Check", "Engine", "Simulator", "Message"]
    lines += md_table(headers, rows)
    return lines + md_more(len(report.disagreements), report.disagreements_total, "checks")


def _md_health(report: Report) -> list[str]:
    health = report.health
    return [
        "## Scan health",
        "",
        f"- {md(health_line(health))}",
        f"- Last successful scan: {format_time(health.last_success_at)}",
        f"- Duration: average {format_seconds(health.average_seconds)}, "
        f"longest {format_seconds(health.longest_seconds)}",
        "",
        f"_Generated {format_time(report.generated_at)} by `vaultscan report`._",
    ]


# --- HTML -------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1b1f24;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
h3{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto}
.warning{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .8rem}
.muted{color:#59636e}.bad{color:#b42318}.good{color:#1a7f37}
"""


def h(value: Any) -> str:
    return html.escape(str(value), quote=True)


def html_table(headers: list[str], rows: Iterable[Iterable[str]]) -> str:
    """Cells must already be escaped (h or a fragment built from h)."""
    head = "".join(f"<th>{h(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_code(value: Any) -> str:
    return f"<code>{h(value)}</code>"


def html_more(shown: int, total: int, what: str) -> str:
    return f'<p class="muted">… and {total - shown} more {h(what)}.</p>' if total > shown else ""


def render_html(report: Report) -> str:
    sections = [
        _html_header(report),
        _html_headline(report),
        _html_drift(report),
        _html_causes(report),
        _html_unreachable(report),
        _html_disagreements(report),
        _html_health(report),
    ]
    title = f"vaultscan weekly report, {format_time(report.period_end)}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{h(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _html_header(report: Report) -> str:
    parts = [
        "<h1>vaultscan weekly report</h1>",
        f"<p>Period: {h(format_time(report.period_start))} to "
        f"{h(format_time(report.period_end))} ({report.days} days), ending at scan run "
        f"#{report.latest_run_id} ({h(report.latest_run_status)}).</p>",
    ]
    warning = latest_run_warning(report)
    if warning:
        parts.append(f'<p class="warning"><strong>Warning:</strong> {h(warning)}</p>')
    items = "".join(f"<li>{h(line)}</li>" for line in summary_lines(report))
    parts.append(f"<ul>{items}</ul>")
    return "\n".join(parts)


def _html_headline(report: Report) -> str:
    if report.now is None:
        return (
            "<h2>Compliance</h2><p>No complete scan yet: every scan so far failed or was "
            "interrupted.</p>"
        )
    start = f"run #{report.start.run_id}" if report.start else "no scan before the period"
    headers = ["", f"Now (run #{report.now.run_id})", f"Start of period ({start})", "Change"]
    table = html_table(headers, ([h(cell) for cell in row] for row in headline_rows(report)))
    errored = report.now.checks_errored
    note = f"<p>{errored} check(s) could not be decided (error).</p>" if errored else ""
    return f"<h2>Compliance</h2>{table}{note}"


def _html_drift(report: Report) -> str:
    other = other_drift_line(report)
    return (
        f"<h2>Regressions ({report.regressed_checks} checks)</h2>"
        + _html_changes(report.regressions, report.regressions_total, "No regression")
        + f"<h2>Fixes ({report.fixed_checks} checks)</h2>"
        + _html_changes(report.fixes, report.fixes_total, "No fix")
        + (f"<p>{h(other)}</p>" if other else "")
    )


def _html_changes(changes: list[DriftChange], total: int, none: str) -> str:
    if not changes:
        return f"<p>{h(none)} in the period.</p>"
    rows = (
        [
            h(format_time(change.occurred_at)),
            h(account_label(change.account_name, change.account_id)),
            h(", ".join(change.regions)),
            html_code(role_name(change.role_arn)),
            html_code(change.check),
            h(", ".join(change.status_now)),
        ]
        for change in changes
    )
    headers = ["When", "Account", "Regions", "Role", "Check", "Status now"]
    return html_table(headers, rows) + html_more(len(changes), total, "rows")


def _html_causes(report: Report) -> str:
    title = (
        f"<h2>Failing now, by cause ({report.failing_checks} checks in "
        f"{report.failing_accounts} accounts)</h2>"
    )
    if not report.causes:
        return title + '<p class="good">Nothing fails.</p>'
    overview = ([h(cell) for cell in row] for row in cause_overview_rows(report))
    title += html_table(CAUSE_OVERVIEW_HEADERS, overview)
    causes = "".join(
        _html_cause(number, cause, report.period_end)
        for number, cause in enumerate(report.causes, start=1)
    )
    return title + causes + html_more(len(report.causes), report.causes_total, "causes")


def _html_cause(number: int, cause: FailingCause, until: datetime) -> str:
    checks = ", ".join(html_code(check) for check in cause.checks)
    example = f' <span class="muted">(written for {h(cause.fix_example)})</span>'
    rows = (
        [
            h(account_label(account.account_name, account.account_id)),
            h(account.ou_path_names),
            ", ".join(html_code(check) for check in account.checks),
            h(", ".join(account.regions)),
            h(format_age(account.failing_since, until)),
        ]
        for account in cause.accounts
    )
    return (
        f"<h3>{number}. {h(cause_title(cause))}</h3>"
        f"<p>{cause.failing_checks} failing check(s) in {cause.account_count} account(s): "
        f"{checks}; failing for {h(format_age(cause.failing_since, until))} (since "
        f"{h(format_time(cause.failing_since))}).</p>"
        f"<p><strong>Fix</strong> ({html_code(cause.fix_kind or 'none')}): "
        f"{h(cause.fix_summary or 'none recorded')}{example if cause.fix_example else ''}</p>"
        + html_table(["Account", "OU", "Checks", "Regions", "Failing for"], rows)
        + html_more(len(cause.accounts), cause.account_count, "accounts")
        + _html_fix_details(cause)
    )


def _html_fix_details(cause: FailingCause) -> str:
    if cause.fix_statement is None and not cause.fix_commands:
        return ""
    parts = [f"<details><summary>{h(FIX_DETAILS_TITLE)}</summary>"]
    if cause.fix_statement is not None:
        parts.append(f"<pre><code>{h(statement_json(cause.fix_statement))}</code></pre>")
    if cause.fix_commands:
        parts.append(f"<pre><code>{h(chr(10).join(cause.fix_commands))}</code></pre>")
    parts.append("</details>")
    return "".join(parts)


def _html_unreachable(report: Report) -> str:
    run = f" (run #{report.unreachable_run_id})" if report.unreachable_run_id else ""
    title = f"<h2>Unreachable accounts{run}</h2>"
    if not report.unreachable:
        return title + "<p>Every account could be read.</p>"
    rows = (
        [h(account_label(a.account_name, a.account_id)), h(a.ou_path_names), h(a.error)]
        for a in report.unreachable
    )
    return (
        title
        + html_table(["Account", "OU", "Reason"], rows)
        + html_more(len(report.unreachable), report.unreachable_total, "accounts")
    )


def _html_disagreements(report: Report) -> str:
    title = f"<h2>Simulator disagreements ({report.disagreements_total})</h2>"
    if not report.disagreements:
        return title + (
            "<p>The IAM policy simulator agrees with vaultscan&#x27;s engine on every check.</p>"
        )
    rows = (
        [
            h(account_label(d.account_name, d.account_id)),
            h(d.region),
            html_code(role_name(d.role_arn)),
            html_code(d.check),
            h(d.decision or "n/a"),
            h(d.simulator_decision or "n/a"),
            h(d.message),
        ]
        for d in report.disagreements
    )
    headers = ["Account", "Region", "Role", "Check", "Engine", "Simulator", "Message"]
    return (
        title
        + html_table(headers, rows)
        + html_more(len(report.disagreements), report.disagreements_total, "checks")
    )


def _html_health(report: Report) -> str:
    health = report.health
    return (
        "<h2>Scan health</h2><ul>"
        f"<li>{h(health_line(health))}</li>"
        f"<li>Last successful scan: {h(format_time(health.last_success_at))}</li>"
        f"<li>Duration: average {h(format_seconds(health.average_seconds))}, longest "
        f"{h(format_seconds(health.longest_seconds))}</li></ul>"
        f'<p class="muted">Generated {h(format_time(report.generated_at))} by '
        "<code>vaultscan report</code>.</p>"
    )


# --- JSON -------------------------------------------------------------------------------


def report_dict(report: Report) -> dict[str, Any]:
    data = asdict(report)
    for name in ("now", "start"):
        compliance = getattr(report, name)
        if compliance is not None:
            data[name]["pass_ratio"] = compliance.pass_ratio
    data["health"]["runs"] = report.health.runs
    return data


def render_json(report: Report) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        return str(value)

    return json.dumps(report_dict(report), indent=2, default=default) + "\n"


RENDERERS: dict[str, Callable[[Report], str]] = {
    "markdown": render_markdown,
    "html": render_html,
    "json": render_json,
}
