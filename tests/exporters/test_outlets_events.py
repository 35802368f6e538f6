"""Event-driven rescans publish to the outlets too: once the rescan's verdicts are stored,
and without an outlet's failure touching the queue handling."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from outlet_seed import record_scan_totals
from sqlalchemy import Engine

from scanner.aws.queue import QueueMessage
from scanner.config import Settings
from scanner.events import consume
from scanner.events.consume import EventConsumer
from scanner.events.rescan import RescanReport

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "events"))
from events_helpers import cloudtrail_event  # noqa: E402

A = "111111111111"


@dataclass
class FakeQueue:
    bodies: list[str]
    deleted: list[str] = field(default_factory=list)
    url: str = "https://sqs.eu-west-1.amazonaws.com/123456789012/events"

    def receive(self, wait_seconds: int) -> list[QueueMessage]:
        out = [QueueMessage(f"m{i}", f"r{i}", body, 1) for i, body in enumerate(self.bodies)]
        self.bodies = []
        return out

    def delete(self, message: QueueMessage) -> None:
        self.deleted.append(message.message_id)

    def max_receive_count(self) -> int | None:
        return 5


def _consumer(engine: Engine, hook: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, FakeQueue]:
    totals = record_scan_totals(engine, {(A, "kms:CreateGrant"): "fail"})

    def run_plan(plan: Any, *args: Any, **kwargs: Any) -> RescanReport:
        assert plan.rescans  # the event asked for a rescan of the role's account
        return RescanReport(run_id=totals.run_id, totals=totals, accounts_collected=[A])

    monkeypatch.setattr(consume, "run_plan", run_plan)
    body = cloudtrail_event(
        "iam", "PutRolePolicy", A, {"roleName": "BackupOperator", "policyName": "p"}
    )
    queue = FakeQueue([body])
    settings = Settings(events={"queue_url": queue.url, "batch_seconds": 0})
    consumer = EventConsumer(settings, engine, None, queue, after_run=hook)  # type: ignore[arg-type]
    return consumer, queue


def test_a_stored_rescan_is_published(engine, monkeypatch):
    published: list[int] = []
    consumer, queue = _consumer(engine, published.append, monkeypatch)
    consumer.poll_once()
    assert queue.deleted == ["m0"]
    assert published == [consumer.last_report.run_id]


def test_a_failing_outlet_leaves_the_queue_handling_alone(engine, monkeypatch, caplog):
    def broken(run_id: int) -> None:
        raise RuntimeError("outlet down")

    consumer, queue = _consumer(engine, broken, monkeypatch)
    consumer.poll_once()
    assert queue.deleted == ["m0"]
    assert "post-rescan step failed error=RuntimeError" in caplog.text
