"""The report's data: the `Report` dataclass and `build_report`, which fills one from the
database in one read-only snapshot through storage.report_queries (the queries aggregate in
PostgreSQL and return at most one row per (cause, account), so the report stays short for
any size of organization)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from scanner.vocabulary import COMPLETE_RUN_STATUSES, DriftKind
from storage import report_queries as queries
from storage.report_queries import (
    ACCOUNTS_PER_CAUSE,
    RUN_STATUS_ORDER,
    STATEMENT_TIMEOUT_MS,
    AffectedAccount,
    Compliance,
    Disagreement,
    DriftChange,
    FailingCause,
    ScanHealth,
    UnreachableAccount,
)
from storage.repository import latest_run

__all__ = [
    "ACCOUNTS_PER_CAUSE",
    "COMPLETE_STATUSES",
    "DEFAULT_DAYS",
    "DEFAULT_LIMIT",
    "LAYER_LABELS",
    "RUN_STATUSES",
    "STATEMENT_TIMEOUT_MS",
    "AffectedAccount",
    "Compliance",
    "Disagreement",
    "DriftChange",
    "FailingCause",
    "NoFinishedScan",
    "Report",
    "ScanHealth",
    "UnreachableAccount",
    "build_report",
    "layer_label",
]

DEFAULT_DAYS = 7
DEFAULT_LIMIT = 50  # rows per list (regressions, fixes, causes, ...); the rest are counted
COMPLETE_STATUSES = COMPLETE_RUN_STATUSES  # runs that read the whole organization
RUN_STATUSES = RUN_STATUS_ORDER
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


def layer_label(layer: str | None) -> str:
    """How the report names a deciding layer."""
    return LAYER_LABELS.get(layer, layer or "")


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
    # One snapshot for every query: the numbers of one report agree.
    with queries.report_snapshot(engine) as conn:
        now_run = queries.complete_run(conn, finished_by=end)
        start_run = queries.complete_run(conn, finished_by=start)
        regressions, regressions_total, regressed = queries.drift_changes(
            conn, DriftKind.REGRESSED, start, end, limit
        )
        fixes, fixes_total, fixed = queries.drift_changes(conn, DriftKind.FIXED, start, end, limit)
        causes = queries.failing_causes(conn)
        unreachable_run = now_run.id if now_run is not None else last.id
        unreachable = queries.unreachable_accounts(conn, unreachable_run)
        disagreements, disagreements_total = queries.disagreements(conn, limit)
        report = Report(
            days=days,
            period_start=start,
            period_end=end,
            generated_at=(now or datetime.now(UTC)).astimezone(UTC),
            latest_run_id=last.id,
            latest_run_status=last.status,
            latest_run_error=last.error,
            now=queries.compliance(conn, now_run) if now_run is not None else None,
            start=queries.compliance(conn, start_run) if start_run is not None else None,
            regressions=regressions,
            regressions_total=regressions_total,
            regressed_checks=regressed,
            fixes=fixes,
            fixes_total=fixes_total,
            fixed_checks=fixed,
            other_drift=queries.other_drift(conn, start, end),
            causes=causes[:limit],
            causes_total=len(causes),
            failing_checks=sum(cause.failing_checks for cause in causes),
            failing_accounts=queries.failing_accounts(conn),
            unreachable_run_id=unreachable_run,
            unreachable=unreachable[:limit],
            unreachable_total=len(unreachable),
            disagreements=disagreements,
            disagreements_total=disagreements_total,
            health=queries.scan_health(conn, start, end),
        )
    return report
