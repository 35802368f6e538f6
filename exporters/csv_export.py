"""CSV for `vaultscan results` and `vaultscan report`: stable columns, documented in
docs/integrations.md, so a spreadsheet or a script can rely on them. New columns are only
ever appended; none is renamed or removed.

Values: empty for none, `true`/`false` for booleans, ISO 8601 UTC for times, JSON for
policy statements; a fix's commands are joined with newlines inside one quoted field.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

# One row per check (account, region, role, check), as `vaultscan results` lists them.
RESULT_COLUMNS: tuple[str, ...] = (
    "account_id",
    "account_name",
    "ou_path",
    "region",
    "role_arn",
    "check",
    "resource",
    "status",
    "decision",
    "deciding_layer",
    "policy",
    "statement",
    "simulator_decision",
    "disagreement",
    "message",
    "fix_kind",
    "fix_target",
    "fix_summary",
    "fix_statement",
    "fix_commands",
    "failing_since",
    "last_changed_at",
    "scan_run_id",
)

# One row per item of the report's lists; `section` says which list.
REPORT_SECTIONS = (
    "failing",
    "regressed",
    "fixed",
    "unreachable",
    "disagreement",
    "trend",
    "ou",
    "top_fix",
    "owner",
)
REPORT_COLUMNS: tuple[str, ...] = (
    "section",
    "account_id",
    "account_name",
    "ou_path",
    "regions",
    "role_arn",
    "checks",
    "deciding_layer",
    "policy",
    "statement",
    "fix_kind",
    "fix_summary",
    "count",
    "since",
    "detail",
    "period_start",
    "period_end",
    "latest_run_id",
    "checks_total",
    "checks_passed",
    "cause",
)


def cell(value: Any) -> str:
    """One value as CSV text (see the module docstring for the rules)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "\n".join(cell(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def write_csv(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """A header line, then one line per row; every value quoted only when needed."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: cell(row.get(name)) for name in columns})
    return buffer.getvalue()


def result_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row of storage.repository.latest_results as RESULT_COLUMNS."""
    fix = row.get("remediation") or {}
    return {
        **{name: row.get(name) for name in RESULT_COLUMNS},
        "ou_path": row.get("ou_path_names"),
        "fix_kind": fix.get("kind"),
        "fix_target": fix.get("target"),
        "fix_summary": fix.get("summary"),
        "fix_statement": fix.get("statement"),
        "fix_commands": fix.get("commands"),
    }


def results_csv(rows: Iterable[dict[str, Any]]) -> str:
    return write_csv(RESULT_COLUMNS, (result_row(row) for row in rows))


# --- the report -----------------------------------------------------------------------


def _cause_cells(cause: Any) -> dict[str, Any]:
    """Where a failure is decided and how to fix it, as the failing and top_fix rows give it."""
    return {
        "deciding_layer": cause.layer,
        "policy": cause.policy,
        "statement": cause.statement,
        "fix_kind": cause.fix_kind,
        "fix_summary": cause.fix_summary,
    }


def _check_counts(group: Any) -> dict[str, Any]:
    # count: the group's failing checks, beside its total and passed ones
    return {
        "count": group.checks_failed,
        "checks_total": group.checks_total,
        "checks_passed": group.checks_passed,
    }


def _failing_rows(report: Any) -> Iterable[dict[str, Any]]:
    for cause in report.causes:
        for account in cause.accounts:
            yield {
                "section": "failing",
                "account_id": account.account_id,
                "account_name": account.account_name,
                "ou_path": account.ou_path_names,
                "regions": account.regions,
                "checks": account.checks,
                **_cause_cells(cause),
                "count": account.failing_checks,
                "since": account.failing_since,
            }


def _drift_rows(section: str, changes: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for change in changes:
        yield {
            "section": section,
            "account_id": change.account_id,
            "account_name": change.account_name,
            "regions": change.regions,
            "role_arn": change.role_arn,
            "checks": [change.check],
            "count": change.checks,
            "since": change.occurred_at,
            "detail": ", ".join(change.status_now),
            "cause": change.cause,
        }


def _unreachable_rows(report: Any) -> Iterable[dict[str, Any]]:
    for account in report.unreachable:
        yield {
            "section": "unreachable",
            "account_id": account.account_id,
            "account_name": account.account_name,
            "ou_path": account.ou_path_names,
            "detail": account.error,
        }


def _disagreement_rows(report: Any) -> Iterable[dict[str, Any]]:
    for item in report.disagreements:
        yield {
            "section": "disagreement",
            "account_id": item.account_id,
            "account_name": item.account_name,
            "regions": [item.region],
            "role_arn": item.role_arn,
            "checks": [item.check],
            "detail": f"engine {item.decision}, simulator {item.simulator_decision}: "
            f"{item.message}",
        }


def _trend_rows(report: Any) -> Iterable[dict[str, Any]]:
    # one row per day; since: the day, count: scans that finished that day
    for day in report.trend:
        yield {
            "section": "trend",
            "since": day.day.isoformat(),
            "count": day.runs,
            "checks_total": day.checks_total if day.run_id else None,
            "checks_passed": day.checks_passed if day.run_id else None,
            "detail": "partial" if day.partial_runs else ("" if day.run_id else "no complete scan"),
        }


def _ou_rows(report: Any) -> Iterable[dict[str, Any]]:
    # count: failing checks of every account below the OU
    for ou in report.ous:
        yield {
            "section": "ou",
            "ou_path": ou.ou_names,
            **_check_counts(ou),
            "detail": f"{ou.accounts} accounts, {ou.failing_accounts} failing",
        }


def _top_fix_rows(report: Any) -> Iterable[dict[str, Any]]:
    # count: failing checks the fix clears
    for cause in report.top_fixes:
        yield {
            "section": "top_fix",
            **_cause_cells(cause),
            "count": cause.failing_checks,
            "since": cause.failing_since,
            "detail": f"{cause.account_count} accounts",
        }


def _owner_rows(report: Any) -> Iterable[dict[str, Any]]:
    # detail: the owner tag's value ("" for accounts without it); count: failing checks
    for owner in report.owners:
        yield {
            "section": "owner",
            **_check_counts(owner),
            "detail": owner.owner or "",
        }


def report_rows(report: Any) -> Iterable[dict[str, Any]]:
    """The report's lists (as capped in the report) as REPORT_COLUMNS rows."""
    period = {
        "period_start": report.period_start,
        "period_end": report.period_end,
        "latest_run_id": report.latest_run_id,
    }
    sections: tuple[Callable[[], Iterable[dict[str, Any]]], ...] = (
        lambda: _failing_rows(report),
        lambda: _drift_rows("regressed", report.regressions),
        lambda: _drift_rows("fixed", report.fixes),
        lambda: _unreachable_rows(report),
        lambda: _disagreement_rows(report),
        lambda: _trend_rows(report),
        lambda: _ou_rows(report),
        lambda: _top_fix_rows(report),
        lambda: _owner_rows(report),
    )
    for rows in sections:
        for row in rows():
            yield {**row, **period}


def render_csv(report: Any) -> str:
    """The weekly report as CSV (exporters.report.RENDERERS["csv"])."""
    return write_csv(REPORT_COLUMNS, report_rows(report))
