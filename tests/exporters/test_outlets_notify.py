"""Drift notifications: Slack (Block Kit), a signed generic webhook (both against a local
HTTP server on 127.0.0.1) and Amazon SNS (moto, read back through an SQS subscription);
retries with backoff, and a failing outlet counted, never failing the scan."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws
from outlet_seed import record_scan, record_scan_totals
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from exporters.outlets import OutletMetrics, load_findings, publish_all
from exporters.outlets.delivery import RetryPolicy
from exporters.outlets.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SlackOutlet,
    SnsOutlet,
    WebhookOutlet,
    build_message,
)
from exporters.outlets.securityhub import finding_id
from scanner.config import Settings
from scanner.model import ScanSummary
from scanner.outlets import after_scan_step, publish_run
from scanner.runner import ScanReport
from scanner.service import ScanService

A, B = "111111111111", "222222222222"
REGION = "eu-west-1"
SECRET = "s3cret-signing-key"


@dataclass
class Receiver:
    """A local HTTP endpoint: answers `statuses` in turn (then 200), records each request."""

    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/T000/B000"
    yield state
    server.shutdown()
    server.server_close()


def one_regression_one_fix(engine: Engine) -> int:
    record_scan(engine, {(A, "kms:CreateGrant"): "pass", (B, "kms:Decrypt"): "fail"})
    return record_scan(engine, {(A, "kms:CreateGrant"): "fail", (B, "kms:Decrypt"): "pass"})


def _key(account: str, check: str) -> str:
    return f"{account}|{REGION}|arn:aws:iam::{account}:role/BackupOperator|{check}"


FAST = RetryPolicy(attempts=3, backoff_seconds=0.5, timeout_seconds=5)


def test_message_regressions_first_then_fixes(engine):
    one_regression_one_fix(engine)
    message = build_message(load_findings(engine), max_items=10)
    assert message is not None
    assert [c.account_id for c in message.regressions] == [A]
    assert [c.account_id for c in message.fixes] == [B]
    change = message.regressions[0]
    assert (change.layer, change.policy, change.statement) == ("scp", "p-deny-backup", "DenyBackup")
    assert change.ou_path == "Root/Prod" and change.check == "kms:CreateGrant"
    assert change.fix.startswith("Narrow the SCP statement DenyBackup")
    assert change.finding_id == finding_id(_key(A, "kms:CreateGrant"))


def test_no_change_no_message(engine, receiver):
    record_scan(engine, {(A, "kms:CreateGrant"): "fail"})
    record_scan(engine, {(A, "kms:CreateGrant"): "fail"})  # still failing: nothing new
    scan = load_findings(engine)
    assert build_message(scan, max_items=10) is None
    assert publish_all([SlackOutlet(receiver.url, retry=FAST)], scan) == {"slack": True}
    assert receiver.requests == []


def test_slack_block_kit(engine, receiver):
    one_regression_one_fix(engine)
    assert publish_all([SlackOutlet(receiver.url, retry=FAST)], load_findings(engine)) == {
        "slack": True
    }
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["text"].endswith("1 regression(s), 1 fix(es)")
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "header" and blocks[-1]["type"] == "context"
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    regression = next(t for t in texts if "cannot" in t)
    for part in (
        A,
        "Root/Prod",
        "BackupOperator",
        "kms:CreateGrant",
        "scp layer",
        "p-deny-backup",
        "DenyBackup",
        "Narrow the SCP",
        finding_id(_key(A, "kms:CreateGrant")),
    ):
        assert part in regression, part
    assert texts.index(regression) < next(i for i, t in enumerate(texts) if B in t)
    assert len(blocks) <= 50 and all(len(t) <= 3000 for t in texts)


def test_webhook_is_signed(engine, receiver):
    one_regression_one_fix(engine)
    outlet = WebhookOutlet(receiver.url, SECRET, retry=FAST)
    assert publish_all([outlet], load_findings(engine)) == {"webhook": True}
    headers, body = receiver.requests[0]
    expected = hmac.new(
        SECRET.encode(), headers[TIMESTAMP_HEADER].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["schema"] == "vaultscan.drift/v1"
    assert payload["regressions_total"] == 1 and payload["fixes_total"] == 1
    regression = payload["regressions"][0]
    assert regression["account_id"] == A and regression["statement"] == "DenyBackup"
    assert payload["fixes"][0]["account_id"] == B


def test_sns_through_moto(engine, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    one_regression_one_fix(engine)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        sns, sqs = session.client("sns"), session.client("sqs")
        topic = sns.create_topic(Name="vaultscan-drift")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        outlet = SnsOutlet(sns, topic, retry=FAST)
        assert publish_all([outlet], load_findings(engine)) == {"sns": True}
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 1
    envelope = json.loads(received[0]["Body"])
    assert envelope["Subject"].endswith("1 regression(s), 1 fix(es)")
    text = envelope["Message"]
    assert text.index("REGRESSIONS") < text.index("FIXED")
    assert "denied by the scp layer, policy p-deny-backup, statement DenyBackup" in text
    assert A in text and B in text


def test_failing_outlet_is_retried_then_counted(engine, receiver):
    one_regression_one_fix(engine)
    receiver.statuses = [500, 503, 500]  # every attempt fails
    registry = CollectorRegistry()
    metrics = OutletMetrics(registry)
    slept: list[float] = []
    outlet = SlackOutlet(receiver.url, retry=FAST, on_retry=metrics.retried, sleep=slept.append)
    assert publish_all([outlet], load_findings(engine), metrics) == {"slack": False}
    assert len(receiver.requests) == 3
    assert slept == [0.5, 1.0]  # exponential backoff
    sample = registry.get_sample_value
    assert sample("vaultscan_outlet_deliveries_total", {"outlet": "slack", "result": "failed"}) == 1
    assert sample("vaultscan_outlet_retries_total", {"outlet": "slack"}) == 2


def test_a_retry_that_succeeds_delivers(engine, receiver):
    one_regression_one_fix(engine)
    receiver.statuses = [502]
    slept: list[float] = []
    outlet = WebhookOutlet(receiver.url, SECRET, retry=FAST, sleep=slept.append)
    assert publish_all([outlet], load_findings(engine)) == {"webhook": True}
    assert len(receiver.requests) == 2 and slept == [0.5]


def test_client_errors_are_not_retried(engine, receiver):
    one_regression_one_fix(engine)
    receiver.statuses = [404]
    outlet = SlackOutlet(receiver.url, retry=FAST, sleep=lambda _: None)
    assert publish_all([outlet], load_findings(engine)) == {"slack": False}
    assert len(receiver.requests) == 1


def test_long_lists_are_summarised(engine):
    checks = [f"kms:Check{n}" for n in range(30)]
    record_scan(engine, {(A, check): "pass" for check in checks})
    record_scan(engine, {(A, check): "fail" for check in checks})
    message = build_message(load_findings(engine), max_items=5)
    assert message is not None
    assert len(message.regressions) == 5 and message.regressions_total == 30
    from exporters.outlets.notify import plain_text, slack_payload

    assert "and 25 more regression(s)" in plain_text(message)
    assert any(
        "25 more" in b.get("text", {}).get("text", "") for b in slack_payload(message)["blocks"]
    )


def test_serve_step_publishes_and_never_fails_the_scan(engine, receiver, caplog):
    """The post-scan step of serve: a good outlet receives the message, a failing one is
    logged and counted, and the scan attempt is still 'scanned'."""
    settings = Settings(
        notifications={
            "webhook": {"url": receiver.url, "secret": SECRET},
            "slack": {"webhook_url": "http://127.0.0.1:9/unreachable"},
            "attempts": 2,
            "backoff_seconds": 0,
            "timeout_seconds": 2,
        }
    )
    record_scan(engine, {(A, "kms:CreateGrant"): "pass", (B, "kms:Decrypt"): "fail"})
    registry = CollectorRegistry()
    step = after_scan_step(settings, engine, metrics=OutletMetrics(registry))
    assert step is not None

    def scan(settings: Any, **_: Any) -> ScanReport:
        totals = record_scan_totals(
            engine, {(A, "kms:CreateGrant"): "fail", (B, "kms:Decrypt"): "pass"}
        )
        summary = ScanSummary(started_at=datetime.now(UTC), finished_at=None, outcomes=[])
        return ScanReport(run_id=totals.run_id, summary=summary, totals=totals)

    attempt = ScanService(settings, engine, scan=scan, after_scan=step).scan_once()
    assert attempt.outcome == "scanned"
    assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0][1])["regressions"][0]["account_id"] == A
    sample = registry.get_sample_value
    assert sample("vaultscan_outlet_deliveries_total", {"outlet": "webhook", "result": "ok"}) == 1
    assert sample("vaultscan_outlet_deliveries_total", {"outlet": "slack", "result": "failed"}) == 1
    assert "delivery failed outlet=slack" in caplog.text
    assert "/unreachable" not in caplog.text  # webhook paths are credentials


def test_outlets_that_cannot_be_built_count_as_setup_failures(engine):
    """Security Hub enabled but STS unreachable: nothing raises, the failure is counted and
    the step tries again on the next scan."""
    record_scan(engine, {(A, "kms:CreateGrant"): "fail"})
    settings = Settings(securityhub={"enabled": True})

    class NoSts:
        def client(self, service: str, **_: Any) -> Any:
            raise ConnectionError(f"{service} endpoint unreachable")

    registry = CollectorRegistry()
    metrics = OutletMetrics(registry)
    assert publish_run(settings, engine, 1, session=NoSts(), metrics=metrics) == {"setup": False}
    step = after_scan_step(settings, engine, session=NoSts(), metrics=metrics)
    step(1)
    step(1)
    sample = registry.get_sample_value
    assert sample("vaultscan_outlet_deliveries_total", {"outlet": "setup", "result": "failed"}) == 3
