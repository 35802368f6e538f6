"""The weekly report: how compliance moved over the last N days and what to fix first.

`build_report` reads the database (one read-only snapshot) into a `Report`, a plain
dataclass (`data`); `render_markdown`, `render_html` and `render_json` turn it into text
(`markdown`, `html`, `json`, with the formatting they share in `text`). Every list is
grouped and capped, so the report stays short for any size of organization: the queries
aggregate in PostgreSQL and return at most one row per (cause, account).
"""

from __future__ import annotations

from collections.abc import Callable

from exporters.csv_export import render_csv
from exporters.report.data import (
    ACCOUNTS_PER_CAUSE,
    COMPLETE_STATUSES,
    DEFAULT_DAYS,
    DEFAULT_LIMIT,
    LAYER_LABELS,
    RUN_STATUSES,
    STATEMENT_TIMEOUT_MS,
    AffectedAccount,
    Compliance,
    Disagreement,
    DriftChange,
    FailingCause,
    NoFinishedScan,
    Report,
    ScanHealth,
    UnreachableAccount,
    build_report,
)
from exporters.report.html import h, html_code, html_more, html_table, render_html
from exporters.report.json import render_json, report_dict
from exporters.report.markdown import md, md_block, md_code, md_more, md_table, render_markdown
from exporters.report.text import (
    CAUSE_OVERVIEW_HEADERS,
    FIX_DETAILS_TITLE,
    OTHER_DRIFT_WORDS,
    account_label,
    cause_overview_rows,
    cause_title,
    format_age,
    format_change,
    format_ratio,
    format_seconds,
    format_time,
    headline_rows,
    health_line,
    latest_run_warning,
    other_drift_line,
    role_name,
    statement_json,
    summary_lines,
)

RENDERERS: dict[str, Callable[[Report], str]] = {
    "markdown": render_markdown,
    "html": render_html,
    "json": render_json,
    "csv": render_csv,
}

__all__ = [
    "ACCOUNTS_PER_CAUSE",
    "CAUSE_OVERVIEW_HEADERS",
    "COMPLETE_STATUSES",
    "DEFAULT_DAYS",
    "DEFAULT_LIMIT",
    "FIX_DETAILS_TITLE",
    "LAYER_LABELS",
    "OTHER_DRIFT_WORDS",
    "RENDERERS",
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
    "account_label",
    "build_report",
    "cause_overview_rows",
    "cause_title",
    "format_age",
    "format_change",
    "format_ratio",
    "format_seconds",
    "format_time",
    "h",
    "headline_rows",
    "health_line",
    "html_code",
    "html_more",
    "html_table",
    "latest_run_warning",
    "md",
    "md_block",
    "md_code",
    "md_more",
    "md_table",
    "other_drift_line",
    "render_html",
    "render_json",
    "render_markdown",
    "report_dict",
    "role_name",
    "statement_json",
    "summary_lines",
]
