"""The report's history and breakdown queries: the daily compliance trend, the roll-up of
every OU over its whole subtree, the cause behind each regression and fix, and a cause's
fix commands for every region. Each aggregates in PostgreSQL inside the report's snapshot
(storage.report_queries.report_snapshot) and returns small typed rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, text

from scanner.vocabulary import COMPLETE_RUN_STATUSES, RunStatus


@dataclass
class TrendDay:
    """One UTC day of the period: its scans, and the compliance of its last complete one."""

    day: date
    runs: int  # scans that finished that day, any status
    complete_runs: int  # succeeded or partial
    partial_runs: int
    run_id: int | None  # the last complete run of the day
    checks_total: int
    checks_passed: int
    checks_failed: int
    accounts_errored: int

    @property
    def ratio(self) -> float | None:
        return self.checks_passed / self.checks_total if self.checks_total else None


_TREND = text(
    """
    WITH days AS (
        SELECT d::date AS day
        FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day') AS d
    ), finished AS (
        SELECT id, status, checks_total, checks_passed, checks_failed, accounts_errored,
               (finished_at AT TIME ZONE 'UTC')::date AS day, finished_at
        FROM scan_runs
        WHERE finished_at > :start AND finished_at <= :end AND status <> :running
    ), last_complete AS (
        SELECT DISTINCT ON (day) day, id, checks_total, checks_passed, checks_failed,
               accounts_errored
        FROM finished WHERE status = ANY(:complete)
        ORDER BY day, finished_at DESC, id DESC
    )
    SELECT days.day,
           (SELECT count(*) FROM finished f WHERE f.day = days.day) AS runs,
           (SELECT count(*) FROM finished f
            WHERE f.day = days.day AND f.status = ANY(:complete)) AS complete_runs,
           (SELECT count(*) FROM finished f
            WHERE f.day = days.day AND f.status = :partial) AS partial_runs,
           lc.id AS run_id, coalesce(lc.checks_total, 0) AS checks_total,
           coalesce(lc.checks_passed, 0) AS checks_passed,
           coalesce(lc.checks_failed, 0) AS checks_failed,
           coalesce(lc.accounts_errored, 0) AS accounts_errored
    FROM days LEFT JOIN last_complete lc ON lc.day = days.day
    ORDER BY days.day
    """
)


def daily_trend(conn: Connection, start: datetime, end: datetime) -> list[TrendDay]:
    """Every UTC day from `start` to `end` (days without a scan included, as gaps), read
    from scan_runs (kept by retention, so the trend outlives the evidence)."""
    params = {
        "first": start.astimezone(UTC).date(),
        "last": end.astimezone(UTC).date(),
        "start": start,
        "end": end,
        "running": RunStatus.RUNNING.value,
        "partial": RunStatus.PARTIAL.value,
        "complete": list(COMPLETE_RUN_STATUSES),
    }
    return [TrendDay(**row._mapping) for row in conn.execute(_TREND, params)]


@dataclass
class OuRollup:
    """An OU (or the root) and every account below it, at any depth."""

    ou_path: str  # ids, root first
    ou_names: str
    depth: int  # 1 for the root
    accounts: int
    failing_accounts: int  # at least one failing check
    checks_total: int  # known (not gone) checks
    checks_passed: int
    checks_failed: int
    checks_errored: int

    @property
    def ratio(self) -> float | None:
        return self.checks_passed / self.checks_total if self.checks_total else None


# Each account counts towards every prefix of its OU path: the root, each OU on the way
# and its direct parent; grouped by ids (names may repeat or contain '/').
_OU_ROLLUP = text(
    """
    WITH per_account AS (
        SELECT cs.account_id,
               count(*) AS total,
               count(*) FILTER (WHERE cs.status = 'pass') AS passed,
               count(*) FILTER (WHERE cs.status = 'fail') AS failed,
               count(*) FILTER (WHERE cs.status = 'error') AS errored
        FROM check_state cs WHERE cs.status <> 'gone' GROUP BY cs.account_id
    ), paths AS (
        SELECT p.*, string_to_array(a.ou_path, '/') AS ids,
               string_to_array(a.ou_path_names, '/') AS names
        FROM per_account p JOIN accounts a ON a.account_id = p.account_id
        WHERE a.ou_path <> ''
    )
    SELECT array_to_string(ids[1:depth], '/') AS ou_path,
           max(array_to_string(names[1:depth], '/')) AS ou_names,
           depth,
           count(*) AS accounts,
           count(*) FILTER (WHERE failed > 0) AS failing_accounts,
           sum(total) AS checks_total, sum(passed) AS checks_passed,
           sum(failed) AS checks_failed, sum(errored) AS checks_errored
    FROM paths, generate_series(1, cardinality(ids)) AS depth
    GROUP BY 1, 3
    ORDER BY 1
    """
)


def ou_rollup(conn: Connection) -> list[OuRollup]:
    """Every OU with the latest status of every check of every account below it."""
    return [
        OuRollup(
            ou_path=row.ou_path,
            ou_names=row.ou_names,
            depth=row.depth,
            accounts=row.accounts,
            failing_accounts=row.failing_accounts,
            checks_total=int(row.checks_total),
            checks_passed=int(row.checks_passed),
            checks_failed=int(row.checks_failed),
            checks_errored=int(row.checks_errored),
        )
        for row in conn.execute(_OU_ROLLUP)
    ]


@dataclass(frozen=True)
class ChangeCause:
    """What decided a check when it failed: for a regression, the failing result of the
    run that regressed; for a fix, the last failing result before the fix."""

    layer: str | None
    policy: str | None
    statement: str | None
    fix_kind: str | None


# One row per (run, account, role, check) of drift_changes: the failing result it is
# about. Lateral lookups by (check_key, scan_run_id): the index ix_check_results_key_run.
_CHANGE_CAUSES = text(
    """
    SELECT DISTINCT ON (c.scan_run_id, c.account_id, c.role_arn, c."check")
           c.scan_run_id, c.account_id, c.role_arn, c."check",
           r.deciding_layer, r.policy, r.statement, r.remediation ->> 'kind' AS fix_kind
    FROM jsonb_to_recordset(CAST(:changes AS jsonb))
         AS c(scan_run_id bigint, account_id text, role_arn text, "check" text, kind text)
    JOIN drift_events e ON e.scan_run_id = c.scan_run_id AND e.account_id = c.account_id
         AND e.role_arn = c.role_arn AND e."check" = c."check" AND e.kind = c.kind
    CROSS JOIN LATERAL (
        SELECT cr.deciding_layer, cr.policy, cr.statement, cr.remediation
        FROM check_results cr
        WHERE cr.check_key = e.check_key AND cr.status = 'fail'
          AND ((c.kind = 'regressed' AND cr.scan_run_id = c.scan_run_id)
               OR (c.kind = 'fixed' AND cr.scan_run_id < c.scan_run_id))
        ORDER BY cr.scan_run_id DESC LIMIT 1
    ) AS r
    ORDER BY c.scan_run_id, c.account_id, c.role_arn, c."check", e.region
    """
)


def change_causes(
    conn: Connection, changes: Iterable[Any]
) -> dict[tuple[int, str, str, str], ChangeCause]:
    """The cause of each change (DriftChange rows); changes whose failing result retention
    has removed are left out."""
    import json

    rows = [
        {
            "scan_run_id": c.scan_run_id,
            "account_id": c.account_id,
            "role_arn": c.role_arn,
            "check": c.check,
            "kind": str(c.kind),
        }
        for c in changes
    ]
    if not rows:
        return {}
    return {
        (row.scan_run_id, row.account_id, row.role_arn, row.check): ChangeCause(
            row.deciding_layer, row.policy, row.statement, row.fix_kind
        )
        for row in conn.execute(_CHANGE_CAUSES, {"changes": json.dumps(rows)})
    }


@dataclass
class RegionFix:
    region: str
    example: str  # the account the commands were written for
    commands: list[str] = field(default_factory=list)


# For every cause and region, the fix of its longest-failing check in that region.
_REGION_FIXES = text(
    """
    SELECT DISTINCT ON (cs.deciding_layer, cs.policy, cs.statement,
                        cr.remediation ->> 'kind', cs.region)
           cs.deciding_layer, cs.policy, cs.statement,
           cr.remediation ->> 'kind' AS fix_kind, cs.region, cs.account_id,
           coalesce(a.name, '') AS account_name, cr.remediation -> 'commands' AS commands
    FROM check_state cs
    JOIN check_results cr ON cr.id = cs.last_result_id
    LEFT JOIN accounts a ON a.account_id = cs.account_id
    WHERE cs.status = 'fail'
    ORDER BY cs.deciding_layer, cs.policy, cs.statement, cr.remediation ->> 'kind',
             cs.region, cs.failing_since, cs.check_key
    """
)


def region_fixes(conn: Connection) -> dict[tuple[Any, ...], list[RegionFix]]:
    """(layer, policy, statement, fix kind) -> the fix commands for each region."""
    found: dict[tuple[Any, ...], list[RegionFix]] = {}
    for row in conn.execute(_REGION_FIXES):
        key = (row.deciding_layer, row.policy, row.statement, row.fix_kind)
        commands = [str(command) for command in (row.commands or []) if command]
        example = f"{row.account_name or row.account_id} ({row.account_id})"
        found.setdefault(key, []).append(RegionFix(row.region, example, commands))
    return found


@dataclass
class OwnerRollup:
    """The accounts carrying one value of the owner tag (or none: `owner` is None)."""

    owner: str | None
    accounts: int
    failing_accounts: int
    checks_total: int
    checks_passed: int
    checks_failed: int
    checks_errored: int

    @property
    def ratio(self) -> float | None:
        return self.checks_passed / self.checks_total if self.checks_total else None


_OWNERS = text(
    """
    SELECT a.tags ->> :tag AS owner,
           count(DISTINCT cs.account_id) AS accounts,
           count(DISTINCT cs.account_id) FILTER (WHERE cs.status = 'fail') AS failing_accounts,
           count(*) AS checks_total,
           count(*) FILTER (WHERE cs.status = 'pass') AS checks_passed,
           count(*) FILTER (WHERE cs.status = 'fail') AS checks_failed,
           count(*) FILTER (WHERE cs.status = 'error') AS checks_errored
    FROM check_state cs JOIN accounts a ON a.account_id = cs.account_id
    WHERE cs.status <> 'gone'
    GROUP BY 1
    ORDER BY checks_failed DESC, owner NULLS LAST
    """
)


def owner_rollup(conn: Connection, tag: str) -> list[OwnerRollup]:
    """The latest status of every check, by the value of the accounts' `tag`; most
    failing checks first, accounts without the tag last."""
    return [OwnerRollup(**row._mapping) for row in conn.execute(_OWNERS, {"tag": tag})]
