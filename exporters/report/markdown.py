"""The report as Markdown (GitHub flavour): every value escaped, so names and messages
from the organization cannot add markup, links or HTML."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from exporters.report.data import DriftChange, FailingCause, Report
from exporters.report.text import (
    AFFECTED_ACCOUNT_HEADERS,
    CAUSE_OVERVIEW_HEADERS,
    CHANGE_HEADERS,
    DISAGREEMENT_HEADERS,
    FIX_DETAILS_TITLE,
    OU_HEADERS,
    OWNER_HEADERS,
    TOP_FIX_HEADERS,
    TREND_HEADERS,
    UNREACHABLE_HEADERS,
    affected_account_cells,
    cause_overview_rows,
    cause_title,
    change_cells,
    coverage_line,
    disagreement_cells,
    format_age,
    format_seconds,
    format_time,
    headline_headers,
    headline_rows,
    health_line,
    latest_run_warning,
    other_drift_line,
    ou_rows,
    owner_rows,
    report_title,
    statement_json,
    summary_lines,
    top_fix_rows,
    trend_rows,
    unreachable_cells,
)

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
        _md_trend,
        _md_top_fixes,
        _md_drift,
        _md_ous,
        _md_owners,
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
        f"# {md(report_title(report))}",
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
    headers = headline_headers(report.now, report.start)
    lines += md_table(headers, ([md(cell) for cell in row] for row in headline_rows(report)))
    if report.now.checks_errored:
        lines += ["", f"{report.now.checks_errored} check(s) could not be decided (error)."]
    return lines


def _md_trend(report: Report) -> list[str]:
    lines = ["## Daily trend", "", md(coverage_line(report)), ""]
    return lines + md_table(
        TREND_HEADERS, ([md(c) for c in row] for row in trend_rows(report.trend))
    )


def _md_top_fixes(report: Report) -> list[str]:
    lines = ["## Top fixes (by failing checks each clears)", ""]
    if not report.top_fixes:
        return lines + ["Nothing to fix."]
    return lines + md_table(TOP_FIX_HEADERS, ([md(c) for c in row] for row in top_fix_rows(report)))


def _md_ous(report: Report) -> list[str]:
    lines = ["## By OU (every account below it, at any depth)", ""]
    if not report.ous:
        return lines + ["No account with a known OU."]
    return lines + md_table(OU_HEADERS, ([md(c) for c in row] for row in ou_rows(report.ous)))


def _md_owners(report: Report) -> list[str]:
    if not report.owner_tag:
        return []  # grouping by owner is off (report.owner_tag)
    lines = [f"## By owner (account tag {md_code(report.owner_tag)})", ""]
    if not report.owners:
        return lines + ["No account with known checks."]
    rows = ([md(c) for c in row] for row in owner_rows(report.owners, report.owner_tag))
    return lines + md_table(OWNER_HEADERS, rows)


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
    rows = (change_cells(change, md, md_code) for change in changes)
    return md_table(CHANGE_HEADERS, rows) + md_more(len(changes), total, "rows")


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
    rows = (affected_account_cells(account, until, md, md_code) for account in cause.accounts)
    lines += ["", *md_table(AFFECTED_ACCOUNT_HEADERS, rows)]
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
    rows = (unreachable_cells(account, md) for account in report.unreachable)
    lines += md_table(UNREACHABLE_HEADERS, rows)
    return lines + md_more(len(report.unreachable), report.unreachable_total, "accounts")


def _md_disagreements(report: Report) -> list[str]:
    lines = [f"## Simulator disagreements ({report.disagreements_total})", ""]
    if not report.disagreements:
        return lines + ["The IAM policy simulator agrees with vaultscan's engine on every check."]
    rows = (disagreement_cells(d, md, md_code) for d in report.disagreements)
    lines += md_table(DISAGREEMENT_HEADERS, rows)
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
