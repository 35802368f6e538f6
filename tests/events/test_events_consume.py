"""The SQS loop against moto's SQS and a real PostgreSQL: duplicates, malformed messages,
failures left on the queue and the dead-letter queue after the redrive policy's tries."""

from __future__ import annotations

import json
import logging

import pytest
from events_helpers import cloudtrail_event
from prometheus_client import CollectorRegistry

from exporters.event_metrics import EventMetrics
from scanner.aws.calls import CallRecorder
from scanner.aws.permissions import EVENT_QUEUE_ACTIONS
from scanner.aws.queue import EventQueue
from scanner.config import EventsSettings
from scanner.events.consume import EventConsumer
from scanner.runner import run_scan
from scanner.sandbox import BACKUP_ROLE_NAME, break_account
from storage.repository import drift_events


def _queue(sandbox, *, max_receives: int | None = None) -> tuple[str, str | None]:
    sqs = sandbox.session.client("sqs", region_name="us-east-1")
    attributes = {"VisibilityTimeout": "0"}  # a failed message comes back at once
    dlq_url = None
    if max_receives is not None:
        dlq_url = sqs.create_queue(QueueName="events-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}
        )
    url = sqs.create_queue(QueueName="events", Attributes=attributes)["QueueUrl"]
    return url, dlq_url


def _consumer(sandbox, db_engine, url, batch_seconds=0.3, recorder=None, full_scan=None):
    settings = sandbox.settings.model_copy(
        update={
            "events": EventsSettings(queue_url=url, wait_seconds=0, batch_seconds=batch_seconds)
        }
    )
    registry = CollectorRegistry()
    sessions = sandbox.sessions(recorder)
    consumer = EventConsumer(
        settings,
        db_engine,
        sessions,
        EventQueue(sessions, url, "us-east-1"),
        metrics=EventMetrics(registry),
        full_scan=full_scan,
    )
    return consumer, registry


def _send(sandbox, url, *bodies):
    sqs = sandbox.session.client("sqs", region_name="us-east-1")
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)


def _left(sandbox, url) -> int:
    sqs = sandbox.session.client("sqs", region_name="us-east-1")
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _value(registry, name, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_a_duplicate_delivery_is_one_rescan_and_a_redelivery_changes_nothing(sandbox, db_engine):
    run_scan(sandbox.settings, engine=db_engine, sessions=sandbox.sessions())
    url, _ = _queue(sandbox)
    consumer, registry = _consumer(sandbox, db_engine, url)
    victim = sandbox.sandbox.healthy_accounts[0]
    break_account(sandbox.session, sandbox.sandbox, victim.account_id)
    body = cloudtrail_event(
        "iam", "PutRolePolicy", victim.account_id, {"roleName": BACKUP_ROLE_NAME}, event_id="e-1"
    )
    _send(sandbox, url, body, body)
    consumer.poll_once()
    first = consumer.last_report
    assert first is not None and first.accounts_collected == [victim.account_id]
    assert _left(sandbox, url) == 0, "processed messages must be deleted"
    kinds = [e["kind"] for e in drift_events(db_engine, run_id=first.run_id)]
    assert kinds and set(kinds) == {"regressed"}
    assert _value(registry, "vaultscan_events_received_total") == 2
    assert _value(registry, "vaultscan_events_coalesced_total") == 1
    assert _value(registry, "vaultscan_event_to_verdict_seconds_count") == 2
    # SQS may deliver it once more after it was processed: same rescan, no new drift
    _send(sandbox, url, body)
    consumer.poll_once()
    again = consumer.last_report
    assert again.run_id != first.run_id
    assert drift_events(db_engine, run_id=again.run_id) == []


def test_ignored_events_are_deleted_without_a_rescan(sandbox, db_engine):
    url, _ = _queue(sandbox)
    consumer, registry = _consumer(sandbox, db_engine, url)
    _send(
        sandbox,
        url,
        cloudtrail_event(
            "iam",
            "PutRolePolicy",
            "111122223333",
            {"roleName": BACKUP_ROLE_NAME},
            error_code="AccessDenied",
        ),
        cloudtrail_event("kms", "Decrypt", "111122223333", {"keyId": "k"}),
    )
    consumer.poll_once()
    assert consumer.last_report is None
    assert _left(sandbox, url) == 0
    assert _value(registry, "vaultscan_events_ignored_total") == 2


def test_a_malformed_message_goes_to_the_dead_letter_queue_and_the_loop_goes_on(
    sandbox, db_engine, caplog
):
    url, dlq_url = _queue(sandbox, max_receives=2)
    recorder = CallRecorder()
    consumer, registry = _consumer(sandbox, db_engine, url, batch_seconds=0, recorder=recorder)
    _send(sandbox, url, "this is not an event")
    caplog.set_level(logging.INFO, logger="scanner.events.consume")
    for _ in range(3):
        consumer.poll_once()  # never raises
    assert _value(registry, "vaultscan_events_failed_total", reason="malformed") == 2
    assert "failed on its last try (2 of 2): SQS moves it to the dead-letter queue" in caplog.text
    dead = sandbox.session.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10
    )
    assert [m["Body"] for m in dead.get("Messages", [])] == ["this is not an event"]
    assert _left(sandbox, url) == 0
    # the consumer still works after it
    _send(sandbox, url, cloudtrail_event("kms", "Decrypt", "111122223333", {"keyId": "k"}))
    consumer.poll_once()
    assert _value(registry, "vaultscan_events_ignored_total") == 1
    # the scanner's policy grants exactly the SQS calls the consumer made
    sqs_calls = {a for a in recorder.actions() if a.startswith("sqs:")}
    assert sqs_calls == set(EVENT_QUEUE_ACTIONS)


@pytest.mark.parametrize("max_receives", [2])
def test_a_failing_plan_keeps_its_message_until_the_dlq_takes_it(
    sandbox, db_engine, caplog, max_receives
):
    url, dlq_url = _queue(sandbox, max_receives=max_receives)
    consumer, registry = _consumer(sandbox, db_engine, url, batch_seconds=0)
    # a policy that does not exist: DescribePolicy fails, so the plan fails
    body = cloudtrail_event(
        "organizations", "UpdatePolicy", "111122223333", {"policyId": "p-doesnotexist"}
    )
    _send(sandbox, url, body)
    caplog.set_level(logging.INFO, logger="scanner.events.consume")
    consumer.poll_once()
    assert _left(sandbox, url) == 1, "a failed message must stay on the queue"
    assert "left on the queue for a retry" in caplog.text
    consumer.poll_once()
    assert "failed on its last try (2 of 2)" in caplog.text
    consumer.poll_once()
    assert _value(registry, "vaultscan_events_failed_total", reason="processing") == 2
    dead = sandbox.session.client("sqs", region_name="us-east-1").receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10
    )
    assert [m["Body"] for m in dead.get("Messages", [])] == [body]


def test_a_policy_type_change_runs_a_full_scan_before_the_message_is_deleted(sandbox, db_engine):
    url, _ = _queue(sandbox)
    reasons: list[str] = []

    def full_scan(reason: str) -> bool:
        assert _left(sandbox, url) == 1, "deleted before the scan stored its verdicts"
        reasons.append(reason)
        return True

    consumer, _ = _consumer(sandbox, db_engine, url, full_scan=full_scan)
    _send(
        sandbox,
        url,
        cloudtrail_event(
            "organizations",
            "EnablePolicyType",
            sandbox.sandbox.management_account_id,
            {"rootId": sandbox.sandbox.root_id, "policyType": "RESOURCE_CONTROL_POLICY"},
        ),
    )
    consumer.poll_once()
    assert reasons == ["EnablePolicyType RESOURCE_CONTROL_POLICY"]
    assert _left(sandbox, url) == 0
