"""Run the event consumer next to the scheduler in `vaultscan serve`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from sqlalchemy import Engine

    from scanner.config import Settings
    from scanner.events.consume import EventConsumer
    from scanner.service import ScanService

log = logging.getLogger(__name__)


@dataclass
class RunningConsumer:
    consumer: EventConsumer
    thread: threading.Thread

    def stop(self, grace_seconds: float) -> bool:
        """Stop receiving; a plan in progress gets `grace_seconds` to store its verdicts
        (its messages are deleted only then, so an unfinished plan is redelivered)."""
        self.consumer.stopping.set()
        self.thread.join(grace_seconds)
        if self.thread.is_alive():
            log.warning(
                "event consumer still busy after %.0fs; its messages will be redelivered",
                grace_seconds,
            )
            return False
        return True


def start_event_consumer(
    settings: Settings,
    engine: Engine,
    registry: CollectorRegistry,
    service: ScanService,
    *,
    after_run: Callable[[int], None] | None = None,
) -> RunningConsumer | None:
    """Register the event metrics (always, so dashboards show zeros rather than nothing)
    and, when `events.queue_url` is set, start consuming on a daemon thread."""
    from exporters.event_metrics import EventMetrics

    metrics = EventMetrics(registry)
    if not settings.events.queue_url:
        return None
    from scanner.aws.queue import EventQueue
    from scanner.aws.session import AwsSessions
    from scanner.events.consume import EventConsumer

    sessions = AwsSessions(settings)
    queue = EventQueue(sessions, settings.events.queue_url, settings.organization.region)

    def full_scan(reason: str) -> bool:
        attempt = service.scan_once()
        return attempt.outcome != "failed"

    consumer = EventConsumer(
        settings,
        engine,
        sessions,
        queue,
        metrics=metrics,
        full_scan=full_scan,
        after_run=after_run,  # the outlets' post-scan step, as for scheduled scans
    )
    thread = threading.Thread(target=consumer.run, name="vaultscan-events", daemon=True)
    thread.start()
    return RunningConsumer(consumer, thread)
