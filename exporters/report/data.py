"""The report's data: the `Report` dataclass and `build_report`, which fills one from the
database in one read-only snapshot through storage.report_queries (the queries aggregate in
PostgreSQL and return at most one row per (cause, account), so the report stays short for
any size of organization)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from scanner.vocabulary import COMPLETE_RUN_STATUSES, DriftKind
from storage import report_history as history
from storage import report_queries as queries
from storage.report_history import ChangeCause, OuRollup, OwnerRollup, RegionFix, TrendDay
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
    "OuRollup",
    "OwnerRollup",
    "TrendDay",
    "UnreachableAccount",
    "build_report",
    "layer_label",
]

DEFAULT_DAYS = 7
DEFAULT_LIMIT = 50  # rows per list (regressions, fixes, causes, ...); the rest are counted
TOP_FIXES = 5  # the fixes that clear the most failing checks, listed first
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
    trend: list[TrendDay] = field(default_factory=list)  # every day of the period
    ous: list[OuRollup] = field(default_factory=list)  # every OU over its whole subtree
    top_fixes: list[FailingCause] = field(default_factory=list)  # most checks cleared first
    owner_tag: str | None = None  # the account tag owners are grouped by (report.owner_tag)
    owners: list[OwnerRollup] = field(default_factory=list)


# --- reading the database ---------------------------------------------------------------


def build_report(
    engine: Engine,
    *,
    days: int = DEFAULT_DAYS,
    limit: int = DEFAULT_LIMIT,
    now: datetime | None = None,
    owner_tag: str | None = None,
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
            trend=history.daily_trend(conn, start, end),
            ous=history.ou_rollup(conn),
            owner_tag=owner_tag,
            owners=history.owner_rollup(conn, owner_tag) if owner_tag else [],
        )
        _every_region_fix(causes, history.region_fixes(conn))
        report.top_fixes = sorted(causes, key=_most_checks_cleared)[:TOP_FIXES]
        _link_causes(report, history.change_causes(conn, [*regressions, *fixes]))
    return report


def _most_checks_cleared(cause: FailingCause) -> tuple[int, int]:
    return (-cause.failing_checks, -cause.account_count)


def _every_region_fix(
    causes: list[FailingCause], fixes: dict[tuple[object, ...], list[RegionFix]]
) -> None:
    """A cause failing in several regions shows each region's commands once, under the
    region's name (the cause's own fix was written for one account and region)."""
    for cause in causes:
        regions = fixes.get((cause.layer, cause.policy, cause.statement, cause.fix_kind), [])
        if len(regions) < 2:
            continue
        commands: list[str] = []
        for region in regions:
            if region.commands:
                commands += [f"# {region.region} (written for {region.example})"]
                commands += region.commands
        if commands:
            cause.fix_commands = commands
            cause.fix_example = f"{len(regions)} regions: " + ", ".join(
                region.region for region in regions
            )


def _link_causes(report: Report, causes: dict[tuple[int, str, str, str], ChangeCause]) -> None:
    for change in [*report.regressions, *report.fixes]:
        found = causes.get((change.scan_run_id, change.account_id, change.role_arn, change.check))
        if found is not None:
            change.cause = change_cause_title(found)


def change_cause_title(cause: ChangeCause) -> str:
    if cause.layer is None and cause.policy is None:
        return f"{layer_label(None)} ({cause.fix_kind or 'no fix'})"
    statement = f", statement {cause.statement}" if cause.statement else ""
    return f"{layer_label(cause.layer)}: {cause.policy or 'no policy allows the action'}{statement}"
