"""What the weekly report reads, as named queries over one read-only snapshot.

Every query aggregates in PostgreSQL and returns at most one row per (cause, account) or
per (run, account, role, check), capped by the caller's `limit` where a list could grow
with the organization; the totals beside each list are counted separately. The row types
below are plain dataclasses the report renders as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, distinct, func, select, text

from scanner.vocabulary import (
    COMPLETE_RUN_STATUSES,
    FINAL_RUN_STATUSES,
    AccountStatus,
    CheckStatus,
    DriftKind,
    RunStatus,
    StateStatus,
)
from storage.models import Account, AccountScan, CheckResult, CheckState, DriftEvent, ScanRun
from storage.repository import accounts_compliant, select_current

ACCOUNTS_PER_CAUSE = 25  # accounts listed under one failing cause; the rest are counted
STATEMENT_TIMEOUT_MS = 60_000
# the order in which the report lists run statuses
RUN_STATUS_ORDER: tuple[RunStatus, ...] = (*FINAL_RUN_STATUSES, RunStatus.RUNNING)


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
    cause: str = ""  # what denied it when it failed (filled in by the report)


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


# --- the snapshot -----------------------------------------------------------------------


@contextmanager
def report_snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only REPEATABLE READ transaction: the numbers of one report agree."""
    with engine.connect() as conn:
        conn.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        try:
            yield conn
        finally:
            conn.rollback()


# --- queries ----------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def complete_run(conn: Connection, *, finished_by: datetime) -> Row[Any] | None:
    """The latest run that read the whole organization and finished by `finished_by`."""
    return conn.execute(
        select(ScanRun)
        .where(ScanRun.status.in_(COMPLETE_RUN_STATUSES), ScanRun.finished_at <= finished_by)
        .order_by(ScanRun.finished_at.desc(), ScanRun.id.desc())
        .limit(1)
    ).first()


def compliance(conn: Connection, run: Row[Any]) -> Compliance:
    """What the complete run `run` (a row of complete_run) found."""
    # stored when the run finished; counted from its results only for runs older than that
    compliant = run.accounts_compliant
    if compliant is None:
        compliant = conn.execute(select(accounts_compliant(run.id))).scalar_one()
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


def drift_changes(
    conn: Connection, kind: DriftKind, start: datetime, end: datetime, limit: int
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
            func.array_agg(
                distinct(func.coalesce(CheckState.status, StateStatus.GONE.value))
            ).label("now"),
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


def other_drift(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    """New, gone and error events in the period, by kind."""
    rows = conn.execute(
        select(DriftEvent.kind, func.count())
        .where(
            DriftEvent.kind.in_((DriftKind.NEW, DriftKind.GONE, DriftKind.ERROR)),
            *_in_period(start, end),
        )
        .group_by(DriftEvent.kind)
    )
    return {kind: count for kind, count in rows}


def _fix_kind() -> Any:
    return CheckResult.remediation["kind"].astext


def _cause_columns() -> tuple[Any, ...]:
    return (CheckState.deciding_layer, CheckState.policy, CheckState.statement, _fix_kind())


def failing_causes(conn: Connection) -> list[FailingCause]:
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
        .where(CheckState.status == CheckStatus.FAIL)
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
        .where(CheckState.status == CheckStatus.FAIL)
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


def failing_accounts(conn: Connection) -> int:
    """Accounts with at least one failing check now."""
    return conn.execute(
        select(func.count(distinct(CheckState.account_id))).where(
            CheckState.status == CheckStatus.FAIL
        )
    ).scalar_one()


def unreachable_accounts(conn: Connection, run_id: int) -> list[UnreachableAccount]:
    """Accounts run `run_id` could not read, by name."""
    rows = conn.execute(
        select(AccountScan.account_id, AccountScan.error, Account.name, Account.ou_path_names)
        .outerjoin(Account, Account.account_id == AccountScan.account_id)
        .where(AccountScan.scan_run_id == run_id, AccountScan.status == AccountStatus.ERROR)
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


def disagreements(conn: Connection, limit: int) -> tuple[list[Disagreement], int]:
    """Current checks where the simulator and the engine disagree (capped), and how many."""
    current = [CheckState.disagreement.is_(True), CheckState.status != StateStatus.GONE]
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


def scan_health(conn: Connection, start: datetime, end: datetime) -> ScanHealth:
    """Runs started in the period by status, their durations, and the last success."""
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
        select(func.max(ScanRun.finished_at)).where(ScanRun.status == RunStatus.SUCCEEDED)
    ).scalar_one()
    return ScanHealth(
        runs_by_status={status: by_status[status] for status in _status_order(by_status)},
        last_success_at=_utc(last_success),
        average_seconds=float(average) if average is not None else None,
        longest_seconds=float(longest) if longest is not None else None,
    )


def _status_order(statuses: Iterable[str]) -> list[str]:
    known = [status for status in RUN_STATUS_ORDER if status in statuses]
    return known + sorted(set(statuses) - set(RUN_STATUS_ORDER))
