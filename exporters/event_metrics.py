"""What this process's event consumer did (process-local, like SchedulerMetrics): events
received, ignored (cannot change a verdict), coalesced (absorbed by other work of the same
batch), failed (malformed, or processing failed and the message stays on the queue), and
the seconds from the change (CloudTrail's eventTime) to its verdict stored."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

FAILURE_REASONS = ("malformed", "processing")
# A minute is the target; the tail shows delivery delays and large re-decisions.
LATENCY_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600, 1800)


class EventMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "vaultscan_events_received",
            "CloudTrail events this process received from the event queue.",
            registry=registry,
        )
        self.ignored = Counter(
            "vaultscan_events_ignored",
            "Events that cannot change a verdict (failed calls, roles that are not designated, "
            "calls without effect), deleted without a rescan.",
            registry=registry,
        )
        self.coalesced = Counter(
            "vaultscan_events_coalesced",
            "Events whose work another event of the same batch already covered (bursts, "
            "duplicate deliveries).",
            registry=registry,
        )
        self.failed = Counter(
            "vaultscan_events_failed",
            "Events not processed, by reason: malformed, or processing (left on the queue; "
            "after the redrive policy's maxReceiveCount SQS moves them to the dead-letter queue).",
            ["reason"],
            registry=registry,
        )
        for reason in FAILURE_REASONS:
            self.failed.labels(reason)  # export 0 before the first failure
        self.latency = Histogram(
            "vaultscan_event_to_verdict_seconds",
            "Seconds from a change (CloudTrail eventTime) to its verdicts stored.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
