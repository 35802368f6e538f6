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
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client import Counter as PromCounter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine

from scanner.model import KEY_STATE_CHECK, is_key_state_check
from scanner.policy.arn import role_name as arn_role_name
from scanner.vocabulary import (
    COMPLETE_RUN_STATUSES,
    FINAL_RUN_STATUSES,
    CheckStatus,
    DriftKind,
    RunStatus,
)
from storage import metrics_queries as queries
from storage.metrics_queries import KEY_STATE_LAYER, UNKNOWN_LAYER

log = logging.getLogger(__name__)

CHECK_STATUSES = tuple(CheckStatus)
RUN_STATUSES = FINAL_RUN_STATUSES
# A completed scan: every account read, or some unreadable but the rest recorded.
COMPLETED_STATUSES = COMPLETE_RUN_STATUSES
DRIFT_KINDS = tuple(DriftKind)
# Per-role and per-account series are capped so a broken organization cannot flood
# Prometheus; the uncapped totals are exported alongside.
DEFAULT_MAX_DETAIL_SERIES = 5_000
NO_OU = "(none)"
# A key-state check (KEY_STATE_CHECK) fails because the key is disabled or pending
# deletion: no policy layer denies, and it concerns every role of the account and region.
ALL_ROLES = "(all roles)"


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
    return arn_role_name(role_arn) if role_arn else ALL_ROLES


def _layer(layer: str | None, check: str) -> str:
    if layer:
        return layer
    return KEY_STATE_LAYER if is_key_state_check(check) else UNKNOWN_LAYER


def _ou_label(ou_names: str) -> str:
    return ou_names or NO_OU


def _ou_id(ou_path: str) -> str:
    # the account's direct parent: last id of root-first path
    return ou_path.rsplit("/", 1)[-1] if ou_path else NO_OU


def _aggregate(
    check_rows: Iterable[queries.CheckGroup], ou_rows: Iterable[queries.OuGroup]
) -> _CheckAggregates:
    agg = _CheckAggregates()
    for status, check, layer, disagreement, n in check_rows:
        agg.by_status[status] += n
        agg.by_check[(check, status)] += n
        if status == CheckStatus.FAIL:
            agg.failing_by_layer[_layer(layer, check)] += n
        if disagreement:
            agg.disagreements += n
    for ou_path, ou_names, status, n in ou_rows:
        agg.by_ou[(_ou_id(ou_path), _ou_label(ou_names), status)] += n
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
            with queries.metrics_snapshot(self._engine) as conn:
                families = list(self._from_database(conn))
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
        token = queries.state_token(conn)
        with self._cache_lock:
            if self._cached is not None and self._cached[0] == token:
                return self._cached[1]
        families = [
            *self._check_metrics(conn),
            *self._failing_role_metrics(conn),
            *self._breakdown_metrics(conn),
        ]
        with self._cache_lock:
            self._cached = (token, families)
        return families

    def _check_metrics(self, conn: Connection) -> Iterator[Metric]:
        agg = _aggregate(queries.check_groups(conn), queries.ou_groups(conn))
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
                agg.by_status[CheckStatus.PASS] / total,
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
        rows = queries.failing_roles(conn, key_state_check=KEY_STATE_CHECK, limit=self._max_detail)
        for row in rows:
            values = [
                row.account_id,
                row.account_name,
                _ou_label(row.ou_names),
                row.region,
                role_name(row.role_arn),
                row.layers,
            ]
            since.add_metric(values, row.since)
            failing.add_metric(values, row.failing)
        yield since
        yield failing
        yield _gauge(
            "vaultscan_failing_roles",
            "Currently failing (account, region, role) combinations, uncapped.",
            queries.failing_roles_total(conn),
        )

    def _breakdown_metrics(self, conn: Connection) -> Iterator[Metric]:
        """What the dashboard's OU, account and region variables filter on."""
        subtree = GaugeMetricFamily(
            "vaultscan_ou_checks",
            "Checks of every account below an OU, at any depth (ou: names path from the "
            "root; depth 1 is the root), by latest status.",
            labels=["ou_id", "ou", "depth", "status"],
        )
        for row in sorted(queries.ou_subtree_groups(conn)):
            subtree.add_metric([row.ou_id, row.ou_names, str(row.depth), row.status], row.n)
        yield subtree
        accounts = GaugeMetricFamily(
            "vaultscan_account_checks",
            "Checks of one account in one region by latest status (pass, fail, error, each "
            "exported, 0 included); failing pairs first, capped.",
            labels=["account_id", "account_name", "ou", "region", "status"],
        )
        for row in queries.account_region_groups(conn, limit=self._max_detail):
            labels = [row.account_id, row.account_name, _ou_label(row.ou_names), row.region]
            accounts.add_metric([*labels, CheckStatus.PASS], row.passed)
            accounts.add_metric([*labels, CheckStatus.FAIL], row.failed)
            accounts.add_metric([*labels, CheckStatus.ERROR], row.errored)
        yield accounts
        yield _gauge(
            "vaultscan_account_regions",
            "(account, region) pairs with known checks, uncapped: more than the "
            "vaultscan_account_checks pairs means that metric was capped.",
            queries.account_region_total(conn),
        )

    def _drift_metrics(self, conn: Connection) -> Iterator[Metric]:
        counts = defaultdict(int, queries.drift_counts(conn))
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
        runs = defaultdict(int, queries.run_counts(conn))
        yield _gauge(
            "vaultscan_scan_running",
            "Scans recorded as running right now (any replica).",
            runs[RunStatus.RUNNING],
        )
        finished = CounterMetricFamily(
            "vaultscan_scans", "Scans recorded in the database, by final status.", labels=["status"]
        )
        for status in sorted(set(RUN_STATUSES) | (set(runs) - {RunStatus.RUNNING})):
            finished.add_metric([status], runs[status])
        yield finished

        completed = queries.last_completed_finish(conn, COMPLETED_STATUSES)
        if completed is not None:
            yield _gauge(
                "vaultscan_last_successful_scan_timestamp_seconds",
                "When the last scan that recorded results (succeeded or partial) finished.",
                completed,
            )

        last = queries.last_finished_run(conn)
        if last is None:
            return
        yield _gauge(
            "vaultscan_last_scan_timestamp_seconds",
            "When the last finished scan (any status) finished.",
            last.finished,
        )
        yield _gauge(
            "vaultscan_last_scan_duration_seconds",
            "Wall-clock duration of the last finished scan.",
            last.finished - last.started,
        )
        status = GaugeMetricFamily(
            "vaultscan_last_scan_status",
            "1 for the status of the last finished scan, 0 for the others.",
            labels=["status"],
        )
        for value in sorted(set(RUN_STATUSES) | {last.status}):
            status.add_metric([value], 1.0 if value == last.status else 0.0)
        yield status
        accounts = GaugeMetricFamily(
            "vaultscan_last_scan_accounts",
            "Accounts in the last finished scan: total, "
            "scanned (read) and errored (could not be read).",
            labels=["state"],
        )
        accounts.add_metric(["total"], last.accounts_total)
        accounts.add_metric(["scanned"], last.accounts_scanned)
        accounts.add_metric(["errored"], last.accounts_errored)
        yield accounts
        yield _gauge(
            "vaultscan_last_scan_disagreements",
            "Simulator disagreements found by the last finished scan.",
            last.disagreements,
        )
        unreachable = GaugeMetricFamily(
            "vaultscan_account_unreachable",
            "1 for each account the last finished scan could "
            "not read; one series per unreachable account only.",
            labels=["account_id", "account_name", "ou"],
        )
        for row in queries.unreachable_accounts(conn, last.id, limit=self._max_detail):
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
    try:
        return version("vaultscan")
    except PackageNotFoundError:
        return "unknown"
