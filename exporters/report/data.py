"""The report's data: the dataclasses of a `Report` and `build_report`, which fills one
from the database in one read-only snapshot. The queries aggregate in PostgreSQL and return
at most one row per (cause, account), so the report stays short for any size of
organization."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, distinct, func, select, text

from storage.models import Account, AccountScan, CheckResult, CheckState, DriftEvent, ScanRun
from storage.repository import latest_run, select_current

DEFAULT_DAYS = 7
DEFAULT_LIMIT = 50  # rows per list (regressions, fixes, causes, ...); the rest are counted
ACCOUNTS_PER_CAUSE = 25
COMPLETE_STATUSES = ("succeeded", "partial")  # runs that read the whole organization
RUN_STATUSES = ("succeeded", "partial", "failed", "interrupted", "running")
STATEMENT_TIMEOUT_MS = 60_000
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
    accounts: dict[tuple[Any, ...], list[AffectedAccount]] = {}
    for row in conn.execute(_failing_per_account()):
        key = (row.deciding_layer, row.policy, row.statement, row.fix_kind)
        accounts.setdefault(key, []).append(
            AffectedAccount(
                account_id=row.account_id,
                account_name=row.account_name or "",
                ou_path_names=row.ou_path_names or "",
                checks=sorted(row.checks),
                regions=sorted(row.regions),
                failing_checks=row.failing_checks,
                failing_since=_utc(row.failing_since),
            )
        )
    causes = {key: _cause(key, affected) for key, affected in accounts.items()}
    for row in conn.execute(_fix_examples()):
        cause = causes.get((row.deciding_layer, row.policy, row.statement, row.fix_kind))
        if cause is not None:
            _set_fix(cause, row)
    return sorted(causes.values(), key=_most_important_first)


def _cause(key: tuple[Any, ...], accounts: list[AffectedAccount]) -> FailingCause:
    """One cause from all of its accounts (the list it keeps is capped)."""
    since = [account.failing_since for account in accounts if account.failing_since is not None]
    return FailingCause(
        *key,
        failing_checks=sum(account.failing_checks for account in accounts),
        account_count=len(accounts),
        failing_since=min(since, default=None),
        checks=sorted({check for account in accounts for check in account.checks}),
        accounts=sorted(accounts, key=_longest_failing_first)[:ACCOUNTS_PER_CAUSE],
    )


def _failing_per_account() -> Any:
    columns = _cause_columns()
    return (
        select_current(
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
        select_current(
            CheckState.account_id,
            Account.name,
            CheckState.region,
            CheckState.role_arn,
            CheckState.check,
            CheckResult.decision,
            CheckResult.simulator_decision,
            CheckResult.message,
        )
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
