"""What the Prometheus collector reads at scrape time, as named queries.

All of them run inside `metrics_snapshot`: one read-only REPEATABLE READ transaction, so
the numbers of one scrape agree, with a statement timeout so that a scrape never hangs on
a locked or overloaded database. Each returns small typed rows; the aggregation happens in
PostgreSQL, so the result size is bounded by statuses x checks x layers, by OUs, and by
the caller's `limit` for per-role and per-account detail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from sqlalchemy import Connection, Engine, text

from scanner.vocabulary import AccountStatus, CheckStatus, RunStatus, StateStatus, Trigger

STATEMENT_TIMEOUT_MS = 10_000
WORK_MEM = "32MB"
# Layer reported for a failing check that no policy layer decided (a disabled key, or a
# key pending deletion, concerns the key itself).
KEY_STATE_LAYER = "key_state"
UNKNOWN_LAYER = "unknown"

_GONE = StateStatus.GONE.value
_FAIL = CheckStatus.FAIL.value


class CheckGroup(NamedTuple):
    status: str
    check: str
    deciding_layer: str | None
    disagreement: bool
    n: int


class OuGroup(NamedTuple):
    ou_path: str  # ids, root first ('' when the account is unknown)
    ou_names: str
    status: str
    n: int


class FailingRole(NamedTuple):
    account_id: str
    account_name: str
    ou_names: str
    region: str
    role_arn: str
    since: float  # epoch seconds: start of the longest failing streak
    failing: int  # failing checks
    layers: str  # deciding layers, comma-separated


class LastRun(NamedTuple):
    id: int
    status: str
    started: float  # epoch seconds
    finished: float
    accounts_total: int
    accounts_scanned: int
    accounts_errored: int
    disagreements: int


class UnreachableAccount(NamedTuple):
    account_id: str
    account_name: str
    ou_names: str


@contextmanager
def metrics_snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only snapshot for one scrape; nothing it does is ever committed."""
    options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    with engine.connect().execution_options(**options) as conn:
        conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        # short aggregate queries: JIT compilation costs more than it saves, and a little
        # more memory keeps the grouping off disk
        conn.execute(text("SET LOCAL jit = off"))
        conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        try:
            yield conn
        finally:
            conn.rollback()


# check_state (and so every check aggregate) moves only when a run finishes, in the same
# transaction that sets its finished_at: this token changes exactly when they may change.
_STATE_TOKEN = text("SELECT count(finished_at), max(finished_at), max(id) FROM scan_runs")


def state_token(conn: Connection) -> tuple[object, ...]:
    """A value that changes whenever check_state may have changed (a run finished)."""
    return tuple(conn.execute(_STATE_TOKEN).one())


# Two narrow aggregations over check_state: each groups by few, short columns so
# PostgreSQL hashes in memory.
_CHECK_GROUPS = text(
    f"""
    SELECT status, "check", deciding_layer, disagreement, count(*) AS n
    FROM check_state WHERE status <> '{_GONE}'
    GROUP BY 1, 2, 3, 4
    """
)

_OU_GROUPS = text(
    f"""
    SELECT coalesce(a.ou_path, '') AS ou_path, coalesce(a.ou_path_names, '') AS ou_names,
           s.status, sum(s.n) AS n
    FROM (SELECT account_id, status, count(*) AS n FROM check_state
          WHERE status <> '{_GONE}' GROUP BY 1, 2) AS s
    LEFT JOIN accounts a ON a.account_id = s.account_id
    GROUP BY 1, 2, 3
    """
)


def check_groups(conn: Connection) -> list[CheckGroup]:
    """Known (not gone) check keys by status, check, deciding layer and disagreement."""
    return [CheckGroup(*row) for row in conn.execute(_CHECK_GROUPS)]


def ou_groups(conn: Connection) -> list[OuGroup]:
    """Known check keys by their account's OU path and status."""
    return [
        OuGroup(ou_path, ou_names, status, int(n))
        for ou_path, ou_names, status, n in conn.execute(_OU_GROUPS)
    ]


_FAILING_ROLES = text(
    f"""
    SELECT cs.account_id, coalesce(a.name, '') AS account_name,
           coalesce(a.ou_path_names, '') AS ou_names, cs.region, cs.role_arn,
           extract(epoch FROM min(coalesce(cs.failing_since, cs.last_changed_at))) AS since,
           count(*) AS failing,
           string_agg(DISTINCT coalesce(cs.deciding_layer,
               CASE WHEN cs."check" = :key_state OR cs."check" LIKE :vault_key_state
                    THEN '{KEY_STATE_LAYER}' ELSE '{UNKNOWN_LAYER}' END), ','
           ) AS layers
    FROM check_state cs LEFT JOIN accounts a ON a.account_id = cs.account_id
    WHERE cs.status = '{_FAIL}'
    GROUP BY cs.account_id, a.name, a.ou_path_names, cs.region, cs.role_arn
    ORDER BY since, cs.account_id, cs.region, cs.role_arn
    LIMIT :limit
    """
)

_FAILING_ROLES_TOTAL = text(
    "SELECT count(*) FROM (SELECT DISTINCT account_id, region, role_arn FROM check_state"
    f" WHERE status = '{_FAIL}') AS roles"
)


def failing_roles(conn: Connection, *, key_state_check: str, limit: int) -> list[FailingRole]:
    """Failing (account, region, role) combinations, longest-failing first, at most
    `limit`. A failing check with no deciding layer counts as `key_state` when it is the
    key-state check (`key_state_check`, or `key_state_check (key)` for a vault's key)."""
    params = {
        "limit": limit,
        "key_state": key_state_check,
        "vault_key_state": f"{key_state_check} (%",
    }
    return [
        FailingRole(
            row.account_id,
            row.account_name,
            row.ou_names,
            row.region,
            row.role_arn,
            float(row.since),
            row.failing,
            row.layers,
        )
        for row in conn.execute(_FAILING_ROLES, params)
    ]


def failing_roles_total(conn: Connection) -> int:
    """Failing (account, region, role) combinations, uncapped."""
    return int(conn.execute(_FAILING_ROLES_TOTAL).scalar_one())


# The stored running totals, not a count of drift_events: retention deletes old events,
# and a Prometheus counter must never go down.
_DRIFT = text("SELECT kind, events FROM drift_totals")


def drift_counts(conn: Connection) -> dict[str, int]:
    """Drift events ever recorded, by kind, pruned ones included (kinds without events
    are left out)."""
    return {kind: n for kind, n in conn.execute(_DRIFT)}


_RUNS = text("SELECT status, count(*) FROM scan_runs GROUP BY status")


def run_counts(conn: Connection) -> dict[str, int]:
    """Scan runs by status, running ones included."""
    return {status: n for status, n in conn.execute(_RUNS)}


# Event-driven runs cover a few accounts: "the last scan" (its freshness, status, accounts,
# unreachable accounts) is the last full one, so a stalled scheduler still shows.
_FULL_SCANS = f"trigger <> '{Trigger.EVENT.value}'"

_LAST_COMPLETED = text(
    "SELECT extract(epoch FROM max(finished_at)) FROM scan_runs"
    f" WHERE status = ANY(:statuses) AND {_FULL_SCANS}"
)


def last_completed_finish(conn: Connection, statuses: tuple[str, ...]) -> float | None:
    """When the last run with one of `statuses` finished (epoch seconds), if any."""
    value = conn.execute(_LAST_COMPLETED, {"statuses": list(statuses)}).scalar_one()
    return float(value) if value is not None else None


_LAST_FINISHED = text(
    f"""
    SELECT id, status, extract(epoch FROM started_at) AS started,
           extract(epoch FROM finished_at) AS finished,
           accounts_total, accounts_scanned, accounts_errored, disagreements
    FROM scan_runs WHERE status <> '{RunStatus.RUNNING.value}' AND finished_at IS NOT NULL
      AND {_FULL_SCANS}
    ORDER BY finished_at DESC, id DESC LIMIT 1
    """
)


def last_finished_run(conn: Connection) -> LastRun | None:
    """The run that finished last, whatever its status."""
    row = conn.execute(_LAST_FINISHED).first()
    if row is None:
        return None
    return LastRun(
        row.id,
        row.status,
        float(row.started),
        float(row.finished),
        row.accounts_total,
        row.accounts_scanned,
        row.accounts_errored,
        row.disagreements,
    )


_UNREACHABLE = text(
    f"""
    SELECT s.account_id, coalesce(a.name, '') AS account_name,
           coalesce(a.ou_path_names, '') AS ou_names
    FROM account_scans s LEFT JOIN accounts a ON a.account_id = s.account_id
    WHERE s.scan_run_id = :run_id AND s.status = '{AccountStatus.ERROR.value}'
    ORDER BY s.account_id
    LIMIT :limit
    """
)


def unreachable_accounts(conn: Connection, run_id: int, *, limit: int) -> list[UnreachableAccount]:
    """Accounts run `run_id` could not read, by id, at most `limit`."""
    params = {"run_id": run_id, "limit": limit}
    return [UnreachableAccount(*row) for row in conn.execute(_UNREACHABLE, params)]


class OuSubtreeGroup(NamedTuple):
    ou_id: str  # the OU's own id (the last id of its path)
    ou_names: str  # names path from the root
    depth: int  # 1 for the root
    status: str
    n: int


# Each account counts towards every OU on its path (the root included), so an OU's counts
# cover its whole subtree. Bounded by OUs x statuses.
_OU_SUBTREE = text(
    f"""
    WITH per_account AS (
        SELECT account_id, status, count(*) AS n FROM check_state
        WHERE status <> '{_GONE}' GROUP BY 1, 2
    ), paths AS (
        SELECT p.status, p.n, string_to_array(a.ou_path, '/') AS ids,
               string_to_array(a.ou_path_names, '/') AS names
        FROM per_account p JOIN accounts a ON a.account_id = p.account_id
        WHERE a.ou_path <> ''
    )
    SELECT ids[depth] AS ou_id, max(array_to_string(names[1:depth], '/')) AS ou_names,
           depth, status, sum(n) AS n
    FROM paths, generate_series(1, cardinality(ids)) AS depth
    GROUP BY ids[depth], depth, status
    """
)


def ou_subtree_groups(conn: Connection) -> list[OuSubtreeGroup]:
    """Known check keys of every account below each OU (at any depth), by status."""
    return [
        OuSubtreeGroup(ou_id, ou_names, depth, status, int(n))
        for ou_id, ou_names, depth, status, n in conn.execute(_OU_SUBTREE)
    ]


class AccountRegionGroup(NamedTuple):
    account_id: str
    account_name: str
    ou_names: str
    region: str
    passed: int
    failed: int
    errored: int


_ACCOUNT_REGIONS = text(
    f"""
    SELECT cs.account_id, coalesce(a.name, '') AS account_name,
           coalesce(a.ou_path_names, '') AS ou_names, cs.region,
           count(*) FILTER (WHERE cs.status = 'pass') AS passed,
           count(*) FILTER (WHERE cs.status = '{_FAIL}') AS failed,
           count(*) FILTER (WHERE cs.status = 'error') AS errored
    FROM check_state cs LEFT JOIN accounts a ON a.account_id = cs.account_id
    WHERE cs.status <> '{_GONE}'
    GROUP BY cs.account_id, a.name, a.ou_path_names, cs.region
    ORDER BY failed DESC, errored DESC, cs.account_id, cs.region
    LIMIT :limit
    """
)

_ACCOUNT_REGIONS_TOTAL = text(
    "SELECT count(*) FROM (SELECT DISTINCT account_id, region FROM check_state"
    f" WHERE status <> '{_GONE}') AS pairs"
)


def account_region_groups(conn: Connection, *, limit: int) -> list[AccountRegionGroup]:
    """Known checks per (account, region) by status: failing pairs first, at most `limit`."""
    return [AccountRegionGroup(*row) for row in conn.execute(_ACCOUNT_REGIONS, {"limit": limit})]


def account_region_total(conn: Connection) -> int:
    """(account, region) pairs with known checks, uncapped."""
    return int(conn.execute(_ACCOUNT_REGIONS_TOTAL).scalar_one())
