"""End to end, event-driven: `vaultscan serve` (a subprocess) with its scheduled scan far
in the future consumes an SQS queue on a moto server. For each kind of change a member
account's (or the organization's) policy is changed and the matching CloudTrail-shaped
event is sent; the regression must be stored as a drift event, show in /metrics and fire
the alert in a real Prometheus. Event-to-verdict times are measured and printed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml
from processes import aws_environment, free_port, scratch_database, wait_until
from prometheus_client.parser import text_string_to_metric_families
from promtools import require_tool
from serve_harness import (
    REPO_ROOT,
    MotoSandbox,
    PrometheusProcess,
    ServeProcess,
    write_config,
)
from sqlalchemy import create_engine, text

sys.path.insert(0, str(REPO_ROOT / "tests" / "events"))
from events_helpers import cloudtrail_event  # noqa: E402

pytestmark = pytest.mark.slow

RULES = REPO_ROOT / "exporters" / "rules" / "vaultscan.rules.yml"
TARGET_SECONDS = 60.0
HARMLESS = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "NoBucketDeletion", "Effect": "Deny", "Action": "s3:DeleteBucket", "Resource": "*"}
    ],
}


def _deny(sid: str, action: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AllowAll", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Sid": sid, "Effect": "Deny", "Action": action, "Resource": "*"},
        ],
    }


@dataclass
class EventsWorld:
    moto: MotoSandbox
    serve: ServeProcess
    prometheus: PrometheusProcess
    database_url: str
    queue_url: str
    update_policy_id: str
    quarantine_ou: str
    times: dict[str, float] = field(default_factory=dict)
    webhook: list[dict] = field(default_factory=list)  # drift messages serve posted


@pytest.fixture(scope="module")
def world(
    moto_sandbox: MotoSandbox,
    postgres_admin_conninfo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EventsWorld]:
    # moto's backends are per process: this test shares the session's moto server (and
    # restores what it changed), since a second server would share the same state anyway
    moto = moto_sandbox
    workdir = tmp_path_factory.mktemp("serve-events-e2e")
    env = aws_environment(moto.endpoint)
    webhook: list[dict] = []
    receiver = _webhook_receiver(webhook)
    home = update_id = quarantine = deny_grants = ""
    try:
        with moto.client_env():
            session = moto.session()
            org = session.client("organizations")
            workloads = moto.sandbox.by_name("workloads-shared")
            # in place before the baseline: an SCP whose content changes later, and an OU
            # whose SCP denies grants, empty until an account moves into it
            update_id = org.create_policy(
                Name="LaterTightened",
                Description="changed by the test",
                Type="SERVICE_CONTROL_POLICY",
                Content=json.dumps(HARMLESS),
            )["Policy"]["PolicySummary"]["Id"]
            org.attach_policy(PolicyId=update_id, TargetId=workloads.account_id)
            quarantine = org.create_organizational_unit(
                ParentId=moto.sandbox.root_id, Name="Quarantine"
            )["OrganizationalUnit"]["Id"]
            deny_grants = org.create_policy(
                Name="QuarantineNoGrants",
                Description="no KMS grants",
                Type="SERVICE_CONTROL_POLICY",
                Content=json.dumps(_deny("NoGrants", "kms:CreateGrant")),
            )["Policy"]["PolicySummary"]["Id"]
            org.attach_policy(PolicyId=deny_grants, TargetId=quarantine)
            home = org.list_parents(ChildId=workloads.account_id)["Parents"][0]["Id"]
            sqs = session.client("sqs")
            dlq = sqs.create_queue(QueueName="vaultscan-events-dlq")["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            queue_url = sqs.create_queue(
                QueueName="vaultscan-events",
                Attributes={
                    "VisibilityTimeout": "120",
                    "RedrivePolicy": json.dumps(
                        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}
                    ),
                },
            )["QueueUrl"]
        with scratch_database(postgres_admin_conninfo) as url:
            metrics_port = free_port()
            config = write_config(
                workdir / "vaultscan.yaml",
                moto.settings(),
                database_url=url,
                metrics_port=metrics_port,
                interval_minutes=100_000,  # the scheduled scan is far in the future
                run_at_startup=False,
                stop_grace_seconds=10,
            )
            values = yaml.safe_load(config.read_text())
            values["events"] = {"queue_url": queue_url, "wait_seconds": 1, "batch_seconds": 0.5}
            # the outlets: Security Hub on the moto server, drift messages to a local webhook
            values["securityhub"] = {"enabled": True}
            values["notifications"] = {
                "webhook": {"url": f"http://127.0.0.1:{receiver.server_port}/drift"},
                "backoff_seconds": 0,
            }
            config.write_text(yaml.safe_dump(values))
            baseline = subprocess.run(
                [sys.executable, "-m", "scanner", "serve", "--config", str(config), "--once"],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert baseline.returncode == 0, baseline.stdout + baseline.stderr
            serve = ServeProcess.start(
                config, env, workdir / "serve.log", metrics_port=metrics_port
            )
            prometheus = None
            try:
                serve.wait_ready()
                prometheus = PrometheusProcess.start(
                    require_tool("prometheus"), workdir, [f"127.0.0.1:{metrics_port}"], [RULES]
                )
                yield EventsWorld(
                    moto, serve, prometheus, url, queue_url, update_id, quarantine, webhook=webhook
                )
            finally:
                if prometheus is not None:
                    prometheus.stop()
                serve.stop()
    finally:
        receiver.shutdown()
        receiver.server_close()
        with moto.client_env():
            _restore(moto, home, update_id, quarantine, deny_grants)


def _restore(moto: MotoSandbox, home: str, update_id: str, quarantine: str, deny: str) -> None:
    """Leave the shared sandbox as the other end-to-end tests expect it (best effort)."""
    from scanner.sandbox import BROKEN_BY_DRIFT, repair_account

    session = moto.session()
    org = session.client("organizations")
    workloads = moto.sandbox.by_name("workloads-shared")
    audit = moto.sandbox.by_name("security-audit")
    steps = [
        lambda: (
            workloads.expectation is BROKEN_BY_DRIFT
            and repair_account(session, moto.sandbox, workloads.account_id)
        ),
        lambda: org.move_account(
            AccountId=workloads.account_id, SourceParentId=quarantine, DestinationParentId=home
        ),
        lambda: org.detach_policy(PolicyId=update_id, TargetId=workloads.account_id),
        lambda: org.detach_policy(PolicyId=deny, TargetId=quarantine),
        lambda: org.detach_policy(
            PolicyId=moto.sandbox.policy_ids["DenyBackupVaultCreation"], TargetId=audit.account_id
        ),
        lambda: _member_client(moto, session, audit.account_id, "kms").enable_key(
            KeyId=audit.key_arns["us-east-1"].rsplit("/", 1)[-1]
        ),
        lambda: _member_client(
            moto, session, workloads.account_id, "backup", "eu-west-1"
        ).delete_backup_vault(BackupVaultName="new-vault"),
    ]
    for step in steps:
        try:
            step()
        except Exception as exc:  # a step the test never reached
            logging.getLogger(__name__).info("restore step skipped: %s", exc)


def _member_client(
    moto: MotoSandbox, session, account_id: str, service: str, region: str = "us-east-1"
):
    from scanner.sandbox import _Seeder

    return _Seeder(session, moto.sandbox.regions).member_client(account_id, service, region)


def _webhook_receiver(messages: list[dict]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            messages.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _event(
    service: str,
    name: str,
    account: str,
    request: dict,
    *,
    region: str = "us-east-1",
    response: dict | None = None,
) -> str:
    return cloudtrail_event(service, name, account, request, region=region, response=response)


def _drift_after(url: str, after_id: int, account: str, kind: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text(
                    'SELECT d.id, d."check", r.trigger FROM drift_events d '
                    "JOIN scan_runs r ON r.id = d.scan_run_id "
                    "WHERE d.id > :after AND d.account_id = :account AND d.kind = :kind"
                ),
                {"after": after_id, "account": account, "kind": kind},
            ).all()
    finally:
        engine.dispose()


def _last_drift_id(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT coalesce(max(id), 0) FROM drift_events")).scalar_one()
    finally:
        engine.dispose()


def _change_and_measure(
    world: EventsWorld, label: str, change, body_for, account: str, kind: str = "regressed"
) -> list[tuple]:
    """Make the change, send its event, wait for the drift it must cause; record seconds."""
    before = _last_drift_id(world.database_url)
    with world.moto.client_env():
        session = world.moto.session()
        change(session)
        started = time.monotonic()
        session.client("sqs").send_message(QueueUrl=world.queue_url, MessageBody=body_for(session))
    rows = wait_until(
        lambda: _drift_after(world.database_url, before, account, kind),
        timeout=TARGET_SECONDS,
        what=f"{kind} drift in {account} after {label}",
        every=0.1,
    )
    world.times[label] = time.monotonic() - started
    assert {trigger for _, _, trigger in rows} == {"event"}
    return rows


def _member(world: EventsWorld, session, account_id: str, service: str, region: str = "us-east-1"):
    return _member_client(world.moto, session, account_id, service, region)


def test_each_kind_of_change_is_a_drift_event_within_a_minute(world: EventsWorld) -> None:
    from scanner.sandbox import BACKUP_ROLE_NAME, break_account

    org = world.moto.sandbox
    workloads = org.by_name("workloads-shared")
    audit = org.by_name("security-audit")
    management = org.management_account_id

    # IAM: an inline Deny on the designated role
    rows = _change_and_measure(
        world,
        "iam:PutRolePolicy (role)",
        lambda s: break_account(s, org, workloads.account_id),
        lambda s: _event(
            "iam",
            "PutRolePolicy",
            workloads.account_id,
            {"roleName": BACKUP_ROLE_NAME, "policyName": "EmergencyFreeze"},
        ),
        workloads.account_id,
    )
    assert {check for _, check, _ in rows} == {"backup:CreateBackupVault"}

    # KMS: the vault key disabled
    key_arn = audit.key_arns["us-east-1"]
    rows = _change_and_measure(
        world,
        "kms:DisableKey (key)",
        lambda s: _member(world, s, audit.account_id, "kms").disable_key(
            KeyId=key_arn.rsplit("/", 1)[-1]
        ),
        lambda s: _event(
            "kms",
            "DisableKey",
            audit.account_id,
            {"keyId": key_arn.rsplit("/", 1)[-1]},
            response={"keyId": key_arn},
        ),
        audit.account_id,
    )
    assert any(check.startswith("kms:KeyState") for _, check, _ in rows)

    # Organizations: an SCP attached at the account (re-decided from stored evidence)
    deny_id = org.policy_ids["DenyBackupVaultCreation"]
    rows = _change_and_measure(
        world,
        "organizations:AttachPolicy (SCP, re-decided)",
        lambda s: s.client("organizations").attach_policy(
            PolicyId=deny_id, TargetId=audit.account_id
        ),
        lambda s: _event(
            "organizations",
            "AttachPolicy",
            management,
            {"policyId": deny_id, "targetId": audit.account_id},
        ),
        audit.account_id,
    )
    assert {check for _, check, _ in rows} == {"backup:CreateBackupVault"}

    # Organizations: an SCP's content tightened (re-decided from stored evidence)
    rows = _change_and_measure(
        world,
        "organizations:UpdatePolicy (SCP, re-decided)",
        lambda s: s.client("organizations").update_policy(
            PolicyId=world.update_policy_id,
            Content=json.dumps(_deny("NoMountCapsule", "backup-storage:MountCapsule")),
        ),
        lambda s: _event(
            "organizations", "UpdatePolicy", management, {"policyId": world.update_policy_id}
        ),
        workloads.account_id,
    )
    assert {check for _, check, _ in rows} == {"backup-storage:MountCapsule"}

    # Organizations: the account moved under an OU whose SCP denies grants
    def move(session) -> None:
        orgs = session.client("organizations")
        parent = orgs.list_parents(ChildId=workloads.account_id)["Parents"][0]["Id"]
        orgs.move_account(
            AccountId=workloads.account_id,
            SourceParentId=parent,
            DestinationParentId=world.quarantine_ou,
        )

    rows = _change_and_measure(
        world,
        "organizations:MoveAccount (account)",
        move,
        lambda s: _event(
            "organizations",
            "MoveAccount",
            management,
            {"accountId": workloads.account_id, "destinationParentId": world.quarantine_ou},
        ),
        workloads.account_id,
    )
    assert any(check.startswith("kms:CreateGrant") for _, check, _ in rows)

    # AWS Backup: a new vault whose key policy lacks the account's root statement
    created: dict[str, str] = {}

    def new_vault(session) -> None:
        kms = _member(world, session, workloads.account_id, "kms", "eu-west-1")
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "OnlyAdmins",
                    "Effect": "Allow",
                    "Principal": {
                        "AWS": f"arn:aws:iam::{workloads.account_id}:role/NotTheBackupRole"
                    },
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
        key = kms.create_key(Policy=json.dumps(policy), BypassPolicyLockoutSafetyCheck=True)[
            "KeyMetadata"
        ]
        created["key_id"] = key["KeyId"]
        _member(world, session, workloads.account_id, "backup", "eu-west-1").create_backup_vault(
            BackupVaultName="new-vault", EncryptionKeyArn=key["Arn"]
        )

    rows = _change_and_measure(
        world,
        "backup:CreateBackupVault (account)",
        new_vault,
        lambda s: _event(
            "backup",
            "CreateBackupVault",
            workloads.account_id,
            {"backupVaultName": "new-vault"},
            region="eu-west-1",
        ),
        workloads.account_id,
        kind="new",
    )
    assert any(created["key_id"] in check for _, check, _ in rows), rows

    report = "\n".join(f"  {label}: {seconds:.1f} s" for label, seconds in world.times.items())
    print(f"\nevent-to-verdict (change made -> drift event stored):\n{report}")
    assert all(seconds < TARGET_SECONDS for seconds in world.times.values()), report


def test_the_events_show_in_metrics(world: EventsWorld) -> None:
    families = {f.name: f for f in text_string_to_metric_families(world.serve.metrics())}
    received = families["vaultscan_events_received"].samples
    assert sum(s.value for s in received if s.name.endswith("_total")) >= 6
    latency = families["vaultscan_event_to_verdict_seconds"].samples
    count = next(s.value for s in latency if s.name.endswith("_count"))
    assert count >= 6
    drift = {
        s.labels["kind"]: s.value
        for s in families["vaultscan_drift_events"].samples
        if s.name.endswith("_total")
    }
    assert drift["regressed"] > 0
    # nothing outside the events' scope became gone
    assert drift.get("gone", 0) == 0


def test_prometheus_fires_the_regression_alert(world: EventsWorld) -> None:
    prometheus = world.prometheus

    wait_until(
        lambda: prometheus.firing("VaultscanRegressionDetected"),
        timeout=60,
        what="VaultscanRegressionDetected firing",
    )
    assert prometheus.query("vaultscan_event_to_verdict_seconds_count > 0")


def test_no_message_is_left_behind(world: EventsWorld) -> None:
    with world.moto.client_env():
        attributes = (
            world.moto.session()
            .client("sqs")
            .get_queue_attributes(
                QueueUrl=world.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        )
    assert sum(int(v) for v in attributes.values()) == 0, world.serve.log()[-3000:]
    assert "event rescan stored" in world.serve.log()


def test_the_outlets_hear_of_scheduled_and_event_driven_drift(world: EventsWorld) -> None:
    """Runs after the changes above: the baseline scan and every event-driven rescan that
    changed something posted a drift message, and Security Hub holds exactly the failing
    checks as active findings."""
    from exporters.outlets.securityhub import GENERATOR_ID, finding_id

    engine = create_engine(world.database_url)
    try:
        with engine.connect() as conn:
            triggers = dict(conn.execute(text("SELECT id, trigger FROM scan_runs")).all())
            failing = set(
                conn.execute(
                    text("SELECT check_key FROM check_state WHERE status = 'fail'")
                ).scalars()
            )
    finally:
        engine.dispose()
    messages = wait_until(
        lambda: [m for m in world.webhook if triggers.get(m["run_id"]) == "event"],
        timeout=30,
        what="a drift message from an event-driven rescan",
    )
    assert any(m["regressions"] for m in messages)
    first = min(world.webhook, key=lambda m: m["run_id"])
    assert triggers[first["run_id"]] == "schedule" and first["regressions_total"] > 0
    workloads = world.moto.sandbox.by_name("workloads-shared").account_id
    assert any(
        change["account_id"] == workloads and change["check"] == "backup:CreateBackupVault"
        for message in messages
        for change in message["regressions"]
    )

    def active_findings() -> set[str]:
        with world.moto.client_env():
            client = world.moto.session().client("securityhub")
            return {
                finding["Id"]
                for page in client.get_paginator("get_findings").paginate()
                for finding in page["Findings"]
                if finding["GeneratorId"] == GENERATOR_ID and finding["RecordState"] == "ACTIVE"
            }

    expected = {finding_id(key) for key in failing}
    assert failing
    wait_until(
        lambda: active_findings() == expected,
        timeout=30,
        what="Security Hub's active findings to be the failing checks",
    )
