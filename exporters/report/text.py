"""Formatting shared by the renderers: plain-text values, sentences and table rows.

Everything here returns plain text or takes the renderer's escaping functions (`text` for
ordinary cells, `code` for code spans), so Markdown and HTML show the same content."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from exporters.report.data import (
    COMPLETE_STATUSES,
    AffectedAccount,
    Compliance,
    Disagreement,
    DriftChange,
    FailingCause,
    OuRollup,
    OwnerRollup,
    Report,
    ScanHealth,
    TrendDay,
    UnreachableAccount,
    layer_label,
)
from scanner.policy.arn import role_name

Escape = Callable[[Any], str]

FIX_DETAILS_TITLE = "Statement and commands"
OTHER_DRIFT_WORDS = {
    "new": "new check(s) (first scanned)",
    "gone": "check(s) gone (role, key or account no longer scanned)",
    "error": "check(s) turned to error",
}


def report_title(report: Report) -> str:
    """ "weekly report" for the default week, else the period's length."""
    if report.days == 7:
        return "vaultscan weekly report"
    return f"vaultscan compliance report ({report.days} days)"


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


def account_label(name: str, account_id: str) -> str:
    return f"{name} ({account_id})" if name else account_id


def cause_title(cause: FailingCause) -> str:
    if cause.layer is None and cause.policy is None:
        return (
            f"{layer_label(cause.layer)}: {', '.join(cause.checks)} ({cause.fix_kind or 'no fix'})"
        )
    policy = cause.policy or "no policy allows the action"
    statement = f", statement {cause.statement}" if cause.statement else ""
    return f"{layer_label(cause.layer)}: {policy}{statement}"


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


LATEST_RUN_ENDINGS = {"failed": "failed", "interrupted": "was interrupted"}


def latest_run_warning(report: Report) -> str | None:
    if report.latest_run_status in COMPLETE_STATUSES:
        return None
    error = (report.latest_run_error or "").strip().rstrip(".")
    reason = f": {error}" if error else ""
    ended = LATEST_RUN_ENDINGS.get(report.latest_run_status, f"ended {report.latest_run_status}")
    source = f"run #{report.now.run_id}" if report.now else "no complete scan"
    return (
        f"The latest scan (run #{report.latest_run_id}) {ended}{reason}. "
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


# --- table rows, escaped by the renderer ------------------------------------------------


def headline_headers(now: Compliance, start: Compliance | None) -> list[str]:
    """The headers of headline_rows."""
    before = f"run #{start.run_id}" if start else "no scan before the period"
    return ["", f"Now (run #{now.run_id})", f"Start of period ({before})", "Change"]


CHANGE_HEADERS = ["When", "Account", "Regions", "Role", "Check", "Status now", "Cause"]


def change_cells(change: DriftChange, text: Escape, code: Escape) -> list[str]:
    return [
        text(format_time(change.occurred_at)),
        text(account_label(change.account_name, change.account_id)),
        text(", ".join(change.regions)),
        code(role_name(change.role_arn)),
        code(change.check),
        text(", ".join(change.status_now)),
        text(change.cause or "no longer recorded"),
    ]


# --- history and breakdowns -------------------------------------------------------------


def coverage_line(report: Report) -> str:
    """What the period's scans can and cannot tell, in one plain sentence."""
    trend = report.trend
    finished = sum(day.runs for day in trend)
    complete = sum(day.complete_runs for day in trend)
    partial = sum(day.partial_runs for day in trend)
    source = f"run #{report.now.run_id}" if report.now else "no complete scan"
    if finished == 0:
        return (
            "No scan finished in the period, so there is no trend: the figures below come "
            f"from the last earlier scan ({source})."
        )
    if complete == 0:
        return (
            f"{finished} scan(s) finished in the period but none read the whole organization "
            f"(all failed or were interrupted): compliance figures come from {source}."
        )
    if complete == 1:
        return "Only one complete scan in the period, so there is no trend to show yet."
    if partial == complete:
        return (
            f"Every one of the period's {complete} complete scans was partial (some accounts "
            "could not be read): the trend covers the accounts that could be read."
        )
    days = sum(1 for day in trend if day.complete_runs)
    return f"{complete} complete scan(s) on {days} of the period's {len(trend)} days."


TREND_HEADERS = ["Day (UTC)", "Scans", "Checks passing", "Failing", "Unreachable accounts"]


def trend_rows(trend: list[TrendDay]) -> list[tuple[str, ...]]:
    return [
        (
            day.day.isoformat(),
            _scans_cell(day),
            format_ratio(day.checks_passed, day.checks_total) if day.run_id else "no complete scan",
            str(day.checks_failed) if day.run_id else "",
            str(day.accounts_errored) if day.run_id else "",
        )
        for day in trend
    ]


def _scans_cell(day: TrendDay) -> str:
    if not day.runs:
        return "none"
    other = day.runs - day.complete_runs
    parts = [f"{day.complete_runs} complete"]
    if day.partial_runs:
        parts.append(f"{day.partial_runs} of them partial")
    if other:
        parts.append(f"{other} failed or interrupted")
    return ", ".join(parts)


OU_HEADERS = ["OU", "Accounts", "Failing accounts", "Checks passing", "Failing", "Error"]


def ou_rows(ous: list[OuRollup]) -> list[tuple[str, ...]]:
    """One row per OU (its path of names, parents first); counts cover every account
    below it at any depth."""
    return [
        (
            ou.ou_names or ou.ou_path,
            str(ou.accounts),
            str(ou.failing_accounts),
            format_ratio(ou.checks_passed, ou.checks_total),
            str(ou.checks_failed),
            str(ou.checks_errored),
        )
        for ou in ous
    ]


TOP_FIX_HEADERS = ["#", "Fix", "Clears checks", "In accounts", "Cause"]


def top_fix_rows(report: Report) -> list[tuple[str, ...]]:
    return [
        (
            str(number),
            cause.fix_summary or cause.fix_kind or "no fix recorded",
            str(cause.failing_checks),
            str(cause.account_count),
            cause_title(cause),
        )
        for number, cause in enumerate(report.top_fixes, start=1)
    ]


AFFECTED_ACCOUNT_HEADERS = ["Account", "OU", "Checks", "Regions", "Failing for"]


def affected_account_cells(
    account: AffectedAccount, until: datetime, text: Escape, code: Escape
) -> list[str]:
    return [
        text(account_label(account.account_name, account.account_id)),
        text(account.ou_path_names),
        ", ".join(code(check) for check in account.checks),
        text(", ".join(account.regions)),
        text(format_age(account.failing_since, until)),
    ]


UNREACHABLE_HEADERS = ["Account", "OU", "Reason"]


def unreachable_cells(account: UnreachableAccount, text: Escape) -> list[str]:
    return [
        text(account_label(account.account_name, account.account_id)),
        text(account.ou_path_names),
        text(account.error),
    ]


DISAGREEMENT_HEADERS = ["Account", "Region", "Role", "Check", "Engine", "Simulator", "Message"]


def disagreement_cells(disagreement: Disagreement, text: Escape, code: Escape) -> list[str]:
    d = disagreement
    return [
        text(account_label(d.account_name, d.account_id)),
        text(d.region),
        code(role_name(d.role_arn)),
        code(d.check),
        text(d.decision or "n/a"),
        text(d.simulator_decision or "n/a"),
        text(d.message),
    ]


OWNER_HEADERS = ["Owner", "Accounts", "Failing accounts", "Checks passing", "Failing", "Error"]


def owner_rows(owners: list[OwnerRollup], tag: str) -> list[tuple[str, ...]]:
    return [
        (
            owner.owner if owner.owner is not None else f"(no {tag} tag)",
            str(owner.accounts),
            str(owner.failing_accounts),
            format_ratio(owner.checks_passed, owner.checks_total),
            str(owner.checks_failed),
            str(owner.checks_errored),
        )
        for owner in owners
    ]
