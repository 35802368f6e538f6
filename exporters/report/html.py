"""The report as one standalone HTML page: inline CSS, no script, a Content Security
Policy that allows nothing else; every value escaped."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from exporters.report.data import DriftChange, FailingCause, Report
from exporters.report.svg import trend_svg
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
figure{margin:.5rem 0}svg.trend{max-width:100%;height:auto}
@media print{body{margin:0;max-width:none}details{display:block}
details>summary{list-style:none}h2{break-after:avoid}table,figure{break-inside:avoid}}
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
        _html_trend(report),
        _html_top_fixes(report),
        _html_drift(report),
        _html_ous(report),
        _html_owners(report),
        _html_causes(report),
        _html_unreachable(report),
        _html_disagreements(report),
        _html_health(report),
    ]
    title = f"{report_title(report)}, {format_time(report.period_end)}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{h(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _html_header(report: Report) -> str:
    parts = [
        f"<h1>{h(report_title(report))}</h1>",
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
    headers = headline_headers(report.now, report.start)
    table = html_table(headers, ([h(cell) for cell in row] for row in headline_rows(report)))
    errored = report.now.checks_errored
    note = f"<p>{errored} check(s) could not be decided (error).</p>" if errored else ""
    return f"<h2>Compliance</h2>{table}{note}"


def _html_trend(report: Report) -> str:
    rows = ([h(cell) for cell in row] for row in trend_rows(report.trend))
    return (
        f"<h2>Daily trend</h2><p>{h(coverage_line(report))}</p>"
        f'<figure>{trend_svg(report.trend)}<figcaption class="muted">Share of checks '
        "passing, from each day's last complete scan; hollow: a partial scan (some "
        "accounts could not be read); ticks on the axis: no complete scan that day."
        "</figcaption></figure>"
        f"<details><summary>Every day</summary>{html_table(TREND_HEADERS, rows)}</details>"
    )


def _html_top_fixes(report: Report) -> str:
    title = "<h2>Top fixes (by failing checks each clears)</h2>"
    if not report.top_fixes:
        return title + '<p class="good">Nothing to fix.</p>'
    rows = ([h(cell) for cell in row] for row in top_fix_rows(report))
    return title + html_table(TOP_FIX_HEADERS, rows)


def _html_ous(report: Report) -> str:
    title = "<h2>By OU (every account below it, at any depth)</h2>"
    if not report.ous:
        return title + "<p>No account with a known OU.</p>"
    rows = ([h(cell) for cell in row] for row in ou_rows(report.ous))
    return title + html_table(OU_HEADERS, rows)


def _html_owners(report: Report) -> str:
    if not report.owner_tag:
        return ""  # grouping by owner is off (report.owner_tag)
    title = f"<h2>By owner (account tag {html_code(report.owner_tag)})</h2>"
    if not report.owners:
        return title + "<p>No account with known checks.</p>"
    rows = ([h(cell) for cell in row] for row in owner_rows(report.owners, report.owner_tag))
    return title + html_table(OWNER_HEADERS, rows)


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
    rows = (change_cells(change, h, html_code) for change in changes)
    return html_table(CHANGE_HEADERS, rows) + html_more(len(changes), total, "rows")


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
    rows = (affected_account_cells(account, until, h, html_code) for account in cause.accounts)
    return (
        f"<h3>{number}. {h(cause_title(cause))}</h3>"
        f"<p>{cause.failing_checks} failing check(s) in {cause.account_count} account(s): "
        f"{checks}; failing for {h(format_age(cause.failing_since, until))} (since "
        f"{h(format_time(cause.failing_since))}).</p>"
        f"<p><strong>Fix</strong> ({html_code(cause.fix_kind or 'none')}): "
        f"{h(cause.fix_summary or 'none recorded')}{example if cause.fix_example else ''}</p>"
        + html_table(AFFECTED_ACCOUNT_HEADERS, rows)
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
    rows = (unreachable_cells(account, h) for account in report.unreachable)
    return (
        title
        + html_table(UNREACHABLE_HEADERS, rows)
        + html_more(len(report.unreachable), report.unreachable_total, "accounts")
    )


def _html_disagreements(report: Report) -> str:
    title = f"<h2>Simulator disagreements ({report.disagreements_total})</h2>"
    if not report.disagreements:
        return title + (
            "<p>The IAM policy simulator agrees with vaultscan&#x27;s engine on every check.</p>"
        )
    rows = (disagreement_cells(d, h, html_code) for d in report.disagreements)
    return (
        title
        + html_table(DISAGREEMENT_HEADERS, rows)
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
