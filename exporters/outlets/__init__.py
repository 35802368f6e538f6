"""Outlets: where the findings of a scan go besides the database (Security Hub, OCSF,
notifications). Each outlet is a small object with one method, `publish(scan)`, like a
prometheus_client Collector: adding one touches no scan, storage or CLI code.

`load_findings` reads what every outlet needs through storage functions (never SQL of its
own); `publish_all` runs the configured outlets after a scan and never lets one of them
fail the scan: a failure is logged and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from scanner.vocabulary import CheckStatus, DriftKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanFindings:
    """The state after one finished scan: the latest verdict of every check (without
    evidence) and the drift that scan caused, each drift event with its check's verdict."""

    run_id: int
    run_status: str
    finished_at: datetime
    results: list[dict[str, Any]]
    drift: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing(self) -> list[dict[str, Any]]:
        return [row for row in self.results if row["status"] == CheckStatus.FAIL]

    @property
    def in_error(self) -> list[dict[str, Any]]:
        return [row for row in self.results if row["status"] == CheckStatus.ERROR]

    def regressions(self) -> list[dict[str, Any]]:
        """Checks this scan made fail: pass -> fail, and new checks failing from the start."""
        return [
            event
            for event in self.drift
            if event["kind"] == DriftKind.REGRESSED
            or (event["kind"] == DriftKind.NEW and event.get("current_status") == CheckStatus.FAIL)
        ]

    def fixes(self) -> list[dict[str, Any]]:
        """Checks this scan fixed (fail -> pass)."""
        return [event for event in self.drift if event["kind"] == DriftKind.FIXED]


class Outlet(Protocol):
    """One destination for findings."""

    name: str  # the `outlet` label of the delivery metrics

    def publish(self, scan: ScanFindings) -> None:
        """Deliver; raise when the delivery failed after its own retries."""


class NoFinishedScan(LookupError):
    """The database has no finished scan to publish."""


def load_findings(engine: Engine, run_id: int | None = None) -> ScanFindings:
    """The findings after `run_id` (default: the latest finished run)."""
    from storage.repository import drift_events, latest_results, latest_run

    run = latest_run(engine, finished_only=True)
    if run is None or run.finished_at is None:
        raise NoFinishedScan("no finished scan in the database yet")
    if run_id is not None and run.id != run_id:
        # outlets publish the current state; a run that is not the latest only adds its drift
        log.info("publishing the state after run %s with the drift of run %s", run.id, run_id)
    results = latest_results(engine, include_evidence=False)
    by_key = {row["check_key"]: row for row in results}
    events = drift_events(engine, run_id=run_id if run_id is not None else run.id)
    drift = [{**by_key.get(event["check_key"], {}), **event} for event in events]
    return ScanFindings(
        run_id=run_id if run_id is not None else run.id,
        run_status=run.status,
        finished_at=run.finished_at,
        results=results,
        drift=drift,
    )


class OutletMetrics:
    """Deliveries per outlet and result (ok, failed), and retries: process-local like the
    scheduler's counters."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter

        self.deliveries = Counter(
            "vaultscan_outlet_deliveries",
            "Deliveries of scan findings to an outlet (securityhub, ocsf, slack, sns, "
            "webhook), by result: ok, failed (after every retry).",
            ["outlet", "result"],
            registry=registry,
        )
        self.retries = Counter(
            "vaultscan_outlet_retries",
            "Delivery attempts repeated after a failed one, by outlet.",
            ["outlet"],
            registry=registry,
        )

    def delivered(self, outlet: str, ok: bool) -> None:
        self.deliveries.labels(outlet, "ok" if ok else "failed").inc()

    def retried(self, outlet: str) -> None:
        self.retries.labels(outlet).inc()


def publish_all(
    outlets: Iterable[Outlet], scan: ScanFindings, metrics: OutletMetrics | None = None
) -> dict[str, bool]:
    """Publish to every outlet; returns outlet name -> delivered. Never raises."""
    delivered: dict[str, bool] = {}
    for outlet in outlets:
        started = time.monotonic()
        try:
            outlet.publish(scan)
            ok = True
            log.info(
                "published outlet=%s run_id=%s seconds=%.2f",
                outlet.name,
                scan.run_id,
                time.monotonic() - started,
            )
        except Exception as exc:  # an outlet must never fail the scan
            ok = False
            log.error(
                "delivery failed outlet=%s run_id=%s error=%s: %s",
                outlet.name,
                scan.run_id,
                type(exc).__name__,
                exc,
            )
        delivered[outlet.name] = ok
        if metrics is not None:
            metrics.delivered(outlet.name, ok)
    return delivered


def iso(moment: datetime) -> str:
    """An ISO 8601 UTC timestamp with milliseconds and Z, as ASFF and JSON consumers like."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters; a cut text ends with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
