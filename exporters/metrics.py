"""Prometheus metrics read from the database at scrape time.

Every value below comes from PostgreSQL when Prometheus scrapes, never from this process's
memory: any replica serves the same truth and a restart loses nothing. The only
process-local series are the scheduler's own counters (`SchedulerMetrics`), which describe
what this process did. docs/metrics.md lists every metric with its worst-case series count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

CHECK_STATUSES = ("pass", "fail", "error")
RUN_STATUSES = ("succeeded", "partial", "failed", "interrupted")
# A completed scan: every account read, or some unreadable but the rest recorded.
COMPLETED_STATUSES = ("succeeded", "partial")
DRIFT_KINDS = ("regressed", "fixed", "new", "gone", "error")
# Per-role and per-account series are capped so a broken organization cannot flood
# Prometheus; the uncapped totals are exported alongside.
DEFAULT_MAX_DETAIL_SERIES = 5_000
# A scrape must never hang on a locked or overloaded database.
STATEMENT_TIMEOUT_MS = 10_000
WORK_MEM = "32MB"
NO_OU = "(none)"
# A key-state check fails because the key is disabled or pending deletion: no policy layer
# denies, and it concerns every role of the account and region.
KEY_STATE_CHECK = "kms:KeyState"
KEY_STATE_LAYER = "key_state"
ALL_ROLES = "(all roles)"


# --- queries --------------------------------------------------------------------------
# Two narrow aggregations over check_state: each groups by few, short columns so PostgreSQL
# hashes in memory. The results are bounded by statuses x checks x layers, and by
# accounts x statuses before being folded into OUs, however many checks there are.
_CHECK_GROUPS = text(
    """
    SELECT status, "check", deciding_layer, disagreement, count(*) AS n
    FROM check_state WHERE status <> 'gone'
    GROUP BY 1, 2, 3, 4
    """
)

_OU_GROUPS = text(
    """
    SELECT coalesce(a.ou_path, '') AS ou_path, coalesce(a.ou_path_names, '') AS ou_names,
           s.status, sum(s.n) AS n
    FROM (SELECT account_id, status, count(*) AS n FROM check_state
          WHERE status <> 'gone' GROUP BY 1, 2) AS s
    LEFT JOIN accounts a ON a.account_id = s.account_id
    GROUP BY 1, 2, 3
    """
)

_FAILING_ROLES = text(
    """
    SELECT cs.account_id, coalesce(a.name, '') AS account_name,
           coalesce(a.ou_path_names, '') AS ou_names, cs.region, cs.role_arn,
           extract(epoch FROM min(coalesce(cs.failing_since, cs.last_changed_at))) AS since,
           count(*) AS failing,
           string_agg(DISTINCT coalesce(cs.deciding_layer,
               CASE WHEN cs."check" = :key_state OR cs."check" LIKE :vault_key_state
                    THEN 'key_state' ELSE 'unknown' END), ','
           ) AS layers
    FROM check_state cs LEFT JOIN accounts a ON a.account_id = cs.account_id
    WHERE cs.status = 'fail'
    GROUP BY cs.account_id, a.name, a.ou_path_names, cs.region, cs.role_arn
    ORDER BY since, cs.account_id, cs.region, cs.role_arn
    LIMIT :limit
    """
)

_FAILING_ROLES_TOTAL = text(
    "SELECT count(*) FROM (SELECT DISTINCT account_id, region, role_arn FROM check_state"
    " WHERE status = 'fail') AS roles"
)

# check_state (and so every check aggregate) moves only when a run finishes, in the same
# transaction that sets its finished_at: this token changes exactly when they may change.
_STATE_TOKEN = text("SELECT count(finished_at), max(finished_at), max(id) FROM scan_runs")

_DRIFT = text("SELECT kind, count(*) FROM drift_events GROUP BY kind")

_LAST_FINISHED = text(
    """
    SELECT id, status, extract(epoch FROM started_at) AS started,
           extract(epoch FROM finished_at) AS finished,
           accounts_total, accounts_scanned, accounts_errored, disagreements
    FROM scan_runs WHERE status <> 'running' AND finished_at IS NOT NULL
    ORDER BY finished_at DESC, id DESC LIMIT 1
    """
)

_RUNS = text("SELECT status, count(*) FROM scan_runs GROUP BY status")

_UNREACHABLE = text(
    """
    SELECT s.account_id, coalesce(a.name, '') AS account_name,
           coalesce(a.ou_path_names, '') AS ou_names
    FROM account_scans s LEFT JOIN accounts a ON a.account_id = s.account_id
    WHERE s.scan_run_id = :run_id AND s.status = 'error'
    ORDER BY s.account_id
    LIMIT :limit
    """
)


@dataclass
class _CheckAggregates:
    by_status: Counter[str] = field(default_factory=Counter)
    by_check: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_ou: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    failing_by_layer: Counter[str] = field(default_factory=Counter)
    disagreements: int = 0


def role_name(role_arn: str) -> str:
    """The role's name: the last path segment of its ARN (the account is its own label).
    Checks about the key rather than a role have no ARN."""
    return role_arn.rsplit("/", 1)[-1] if role_arn else ALL_ROLES


def _layer(layer: str | None, check: str) -> str:
    if layer:
        return layer
    return KEY_STATE_LAYER if is_key_state_check(check) else "unknown"


def is_key_state_check(check: str) -> bool:
    """`kms:KeyState` for the configured key, `kms:KeyState (alias/x)` for a vault's key."""
    return check == KEY_STATE_CHECK or check.startswith(f"{KEY_STATE_CHECK} (")


def _ou_label(ou_names: str) -> str:
    return ou_names or NO_OU


def _ou_id(ou_path: str) -> str:
    # the account's direct parent: last id of root-first path
    return ou_path.rsplit("/", 1)[-1] if ou_path else NO_OU


def _aggregate(check_rows: Iterable[Any], ou_rows: Iterable[Any]) -> _CheckAggregates:
    agg = _CheckAggregates()
    for status, check, layer, disagreement, n in check_rows:
        agg.by_status[status] += n
        agg.by_check[(check, status)] += n
        if status == "fail":
            agg.failing_by_layer[_layer(layer, check)] += n
        if disagreement:
            agg.disagreements += n
    for ou_path, ou_names, status, n in ou_rows:
        agg.by_ou[(_ou_id(ou_path), _ou_label(ou_names), status)] += int(n)
    return agg


# --- collector ------------------------------------------------------------------------


class DatabaseCollector(Collector):
    """A prometheus-client collector that queries PostgreSQL on every scrape.

    When the database cannot be read it exports `vaultscan_database_up 0` and nothing
    else from the database, so /metrics still answers and an alert can fire.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        interval_seconds: float | None = None,
        max_detail_series: int = DEFAULT_MAX_DETAIL_SERIES,
        version: str = "",
    ) -> None:
        self._engine = engine
        # the check aggregates of the last scrape, reused until a run finishes
        self._cached: tuple[tuple[Any, ...], list[Metric]] | None = None
        self._cache_lock = threading.Lock()
        self._interval_seconds = interval_seconds
        self._max_detail = max_detail_series
        self._version = version

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = 1.0
        families: list[Metric] = []
        try:
            # One read-only snapshot for all queries: the numbers of one scrape agree.
            options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            with self._engine.connect().execution_options(**options) as conn:
                conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
                # short aggregate queries: JIT compilation costs more than it saves, and
                # a little more memory keeps the grouping off disk
                conn.execute(text("SET LOCAL jit = off"))
                conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
                families = list(self._from_database(conn))
                conn.rollback()
        except Exception as exc:  # any database failure must not break /metrics
            up = 0.0
            families = []
            log.warning("metrics: database unreadable error=%s", type(exc).__name__)
            log.debug("metrics: database error detail", exc_info=True)
        # measured before yielding: the caller formats the families between our yields
        query_seconds = time.perf_counter() - started
        yield from families
        yield _gauge("vaultscan_database_up", "1 when the last scrape could read the database.", up)
        if self._interval_seconds is not None:
            yield _gauge(
                "vaultscan_scan_interval_seconds",
                "Configured time between scheduled scans (for a cron: its longest gap).",
                self._interval_seconds,
            )
        info = InfoMetricFamily("vaultscan_build", "The running vaultscan version.")
        info.add_metric([], {"version": self._version})
        yield info
        yield _gauge(
            "vaultscan_metrics_query_duration_seconds",
            "Time this scrape spent reading the database.",
            query_seconds,
        )

    def _from_database(self, conn: Connection) -> Iterator[Metric]:
        yield from self._state_metrics(conn)
        yield from self._drift_metrics(conn)
        yield from self._scan_metrics(conn)

    def _state_metrics(self, conn: Connection) -> list[Metric]:
        """The check_state metrics: the costly part of a scrape (a pass over every check),
        recomputed only when a run has finished since the last scrape."""
        token = tuple(conn.execute(_STATE_TOKEN).one())
        with self._cache_lock:
            if self._cached is not None and self._cached[0] == token:
                return self._cached[1]
        families = [*self._check_metrics(conn), *self._failing_role_metrics(conn)]
        with self._cache_lock:
            self._cached = (token, families)
        return families

    def _check_metrics(self, conn: Connection) -> Iterator[Metric]:
        agg = _aggregate(conn.execute(_CHECK_GROUPS), conn.execute(_OU_GROUPS))
        checks = GaugeMetricFamily(
            "vaultscan_checks",
            "Checks by latest status (one per account, region, role and action).",
            labels=["status"],
        )
        for status in CHECK_STATUSES:
            checks.add_metric([status], agg.by_status[status])
        yield checks

        total = sum(agg.by_status[s] for s in CHECK_STATUSES)
        if total:
            # No checks yet means no ratio, not 0% or 100%.
            yield _gauge(
                "vaultscan_compliance_ratio",
                "Share of checks that pass (0..1), errors counted as not passing.",
                agg.by_status["pass"] / total,
            )

        by_check = GaugeMetricFamily(
            "vaultscan_checks_by_action",
            "Checks by action (or key check) and latest status.",
            labels=["check", "status"],
        )
        for (check, status), n in sorted(agg.by_check.items()):
            by_check.add_metric([check, status], n)
        yield by_check

        by_ou = GaugeMetricFamily(
            "vaultscan_checks_by_ou",
            "Checks by the account's parent OU (ou: names path from the root) and status.",
            labels=["ou_id", "ou", "status"],
        )
        for (ou_id, ou, status), n in sorted(agg.by_ou.items()):
            by_ou.add_metric([ou_id, ou, status], n)
        yield by_ou

        by_layer = GaugeMetricFamily(
            "vaultscan_failing_checks_by_layer",
            "Failing checks by the policy layer that denied them.",
            labels=["layer"],
        )
        for layer, n in sorted(agg.failing_by_layer.items()):
            by_layer.add_metric([layer], n)
        yield by_layer

        yield _gauge(
            "vaultscan_simulator_disagreements",
            "Checks where the AWS policy simulator and the engine disagree.",
            agg.disagreements,
        )

    def _failing_role_metrics(self, conn: Connection) -> Iterator[Metric]:
        labels = ["account_id", "account_name", "ou", "region", "role", "layer"]
        since = GaugeMetricFamily(
            "vaultscan_role_failing_since_timestamp_seconds",
            "When a currently failing (account, region, role) started failing; one series "
            "per failing role only.",
            labels=labels,
        )
        failing = GaugeMetricFamily(
            "vaultscan_role_failing_checks",
            "Number of failing checks of a currently failing (account, region, role).",
            labels=labels,
        )
        for row in conn.execute(
            _FAILING_ROLES,
            {
                "limit": self._max_detail,
                "key_state": KEY_STATE_CHECK,
                "vault_key_state": f"{KEY_STATE_CHECK} (%",
            },
        ):
            values = [
                row.account_id,
                row.account_name,
                _ou_label(row.ou_names),
                row.region,
                role_name(row.role_arn),
                row.layers,
            ]
            since.add_metric(values, float(row.since))
            failing.add_metric(values, row.failing)
        yield since
        yield failing
        yield _gauge(
            "vaultscan_failing_roles",
            "Currently failing (account, region, role) combinations, uncapped.",
            conn.execute(_FAILING_ROLES_TOTAL).scalar_one(),
        )

    def _drift_metrics(self, conn: Connection) -> Iterator[Metric]:
        counts = defaultdict(int, {kind: n for kind, n in conn.execute(_DRIFT)})
        drift = CounterMetricFamily(
            "vaultscan_drift_events",
            "Drift events recorded, by kind (regressed: a passing "
            "check now fails; fixed: a failing check now passes).",
            labels=["kind"],
        )
        # Every known kind from 0, so increase() sees the very first event.
        for kind in sorted(set(DRIFT_KINDS) | set(counts)):
            drift.add_metric([kind], counts[kind])
        yield drift

    def _scan_metrics(self, conn: Connection) -> Iterator[Metric]:
        runs = defaultdict(int, {status: n for status, n in conn.execute(_RUNS)})
        yield _gauge(
            "vaultscan_scan_running",
            "Scans recorded as running right now (any replica).",
            runs["running"],
        )
        finished = CounterMetricFamily(
            "vaultscan_scans", "Scans recorded in the database, by final status.", labels=["status"]
        )
        for status in sorted(set(RUN_STATUSES) | (set(runs) - {"running"})):
            finished.add_metric([status], runs[status])
        yield finished

        completed = conn.execute(
            text(
                "SELECT extract(epoch FROM max(finished_at)) FROM scan_runs"
                " WHERE status = ANY(:statuses)"
            ),
            {"statuses": list(COMPLETED_STATUSES)},
        ).scalar_one()
        if completed is not None:
            yield _gauge(
                "vaultscan_last_successful_scan_timestamp_seconds",
                "When the last scan that recorded results (succeeded or partial) finished.",
                float(completed),
            )

        last = conn.execute(_LAST_FINISHED).mappings().first()
        if last is None:
            return
        yield _gauge(
            "vaultscan_last_scan_timestamp_seconds",
            "When the last finished scan (any status) finished.",
            float(last["finished"]),
        )
        yield _gauge(
            "vaultscan_last_scan_duration_seconds",
            "Wall-clock duration of the last finished scan.",
            float(last["finished"]) - float(last["started"]),
        )
        status = GaugeMetricFamily(
            "vaultscan_last_scan_status",
            "1 for the status of the last finished scan, 0 for the others.",
            labels=["status"],
        )
        for value in sorted(set(RUN_STATUSES) | {last["status"]}):
            status.add_metric([value], 1.0 if value == last["status"] else 0.0)
        yield status
        accounts = GaugeMetricFamily(
            "vaultscan_last_scan_accounts",
            "Accounts in the last finished scan: total, "
            "scanned (read) and errored (could not be read).",
            labels=["state"],
        )
        accounts.add_metric(["total"], last["accounts_total"])
        accounts.add_metric(["scanned"], last["accounts_scanned"])
        accounts.add_metric(["errored"], last["accounts_errored"])
        yield accounts
        yield _gauge(
            "vaultscan_last_scan_disagreements",
            "Simulator disagreements found by the last finished scan.",
            last["disagreements"],
        )
        unreachable = GaugeMetricFamily(
            "vaultscan_account_unreachable",
            "1 for each account the last finished scan could "
            "not read; one series per unreachable account only.",
            labels=["account_id", "account_name", "ou"],
        )
        for row in conn.execute(_UNREACHABLE, {"run_id": last["id"], "limit": self._max_detail}):
            unreachable.add_metric([row.account_id, row.account_name, _ou_label(row.ou_names)], 1)
        yield unreachable


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


# --- process-local ---------------------------------------------------------------------


class SchedulerMetrics:
    """What this process's scheduler did. Process-local on purpose: a skipped scan leaves
    no row in the database, and each replica's own count (told apart by Prometheus's
    `instance` label) is what shows the lock working. Counters reset on restart, which
    rate() and increase() handle."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.scans = PromCounter(
            "vaultscan_scheduler_scans",
            "Scheduled scans this process attempted, by outcome: scanned, skipped_lock_held "
            "(another replica was scanning), failed.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("scanned", "skipped_lock_held", "failed"):
            self.scans.labels(outcome)  # export 0 before the first event

    def record(self, outcome: str) -> None:
        self.scans.labels(outcome).inc()


def build_registry(
    engine: Engine | None,
    *,
    interval_seconds: float | None = None,
    max_detail_series: int = DEFAULT_MAX_DETAIL_SERIES,
) -> CollectorRegistry:
    """A registry with the database collector (when `engine` is given) and the process
    collector; callers add `SchedulerMetrics(registry)` when they schedule scans."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    if engine is not None:
        registry.register(
            DatabaseCollector(
                engine,
                interval_seconds=interval_seconds,
                max_detail_series=max_detail_series,
                version=_version(),
            )
        )
    return registry


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vaultscan")
    except PackageNotFoundError:
        return "unknown"
