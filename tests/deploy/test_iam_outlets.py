"""The outlets' AWS permissions: `vaultscan iam-policy --role scanner` grants exactly the
actions scanner.aws.permissions lists for the enabled outlets, the outlets call exactly
those (recorded under moto), and docs/integrations.md names each of them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from exporters.outlets import ScanFindings, publish_all
from scanner.aws.permissions import (
    OCSF_S3_ACTIONS,
    ORG_READ_ACTIONS,
    SCANNER_ACTIONS,
    SECURITYHUB_ACTIONS,
    SNS_ACTIONS,
)
from scanner.cli import main
from scanner.config import Settings
from scanner.outlets import configured_outlets

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:vaultscan-drift"
OUTLET_ACTIONS = {*SECURITYHUB_ACTIONS, *OCSF_S3_ACTIONS, *SNS_ACTIONS}
# Needs no permission (API_GetCallerIdentity: "No permissions are required").
UNGATED = {"sts:GetCallerIdentity"}
ALL_ON = {
    "organization": {"region": REGION},
    "securityhub": {"enabled": True},
    "ocsf": {"enabled": True, "s3_uri": "s3://lake/vaultscan/"},
    "notifications": {"sns": {"topic_arn": TOPIC}, "webhook": {"url": "http://127.0.0.1:9/x"}},
}


def _actions(policy: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for statement in policy["Statement"]:
        value = statement["Action"]
        found.update([value] if isinstance(value, str) else value)
    return found


def _policy(tmp_path: Path, capsys: pytest.CaptureFixture[str], values: dict) -> dict:
    config = tmp_path / "vaultscan.yaml"
    config.write_text(yaml.safe_dump(values))
    assert main(["iam-policy", "--role", "scanner", "--config", str(config)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)


def test_scanner_policy_has_outlet_actions_only_when_enabled(tmp_path, capsys):
    base = {*SCANNER_ACTIONS, *ORG_READ_ACTIONS}
    assert _actions(_policy(tmp_path, capsys, {})) == base
    policy = _policy(tmp_path, capsys, ALL_ON)
    assert _actions(policy) == base | OUTLET_ACTIONS
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["WriteOcsfEvents"]["Resource"] == "arn:aws:s3:::lake/vaultscan/*"
    assert by_sid["PublishDriftNotifications"]["Resource"] == TOPIC
    assert all(REGION in r for r in by_sid["ImportFindingsIntoSecurityHub"]["Resource"])
    # one outlet alone brings only its own actions
    only_hub = _policy(tmp_path, capsys, {"securityhub": {"enabled": True}})
    assert _actions(only_hub) == base | set(SECURITYHUB_ACTIONS)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[boto3.Session, set[str]]]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    calls: set[str] = set()
    with mock_aws():
        setup = boto3.Session(region_name=REGION)
        setup.client("sns").create_topic(Name="vaultscan-drift")
        setup.client("s3").create_bucket(
            Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        session = boto3.Session(region_name=REGION)

        def record(model: Any, **_: Any) -> None:
            calls.add(f"{model.service_model.signing_name}:{model.name}")

        session.events.register("before-call", record)
        yield session, calls


def test_outlets_call_exactly_the_listed_actions(recorded):
    session, calls = recorded
    settings = Settings(**ALL_ON)
    outlets = [o for o in configured_outlets(settings, session=session) if o.name != "webhook"]
    assert {o.name for o in outlets} == {"securityhub", "ocsf", "sns"}
    now = datetime.now(UTC)
    row = {
        "check_key": f"111111111111|{REGION}|arn:aws:iam::111111111111:role/B|kms:Decrypt",
        "account_id": "111111111111",
        "region": REGION,
        "role_arn": "arn:aws:iam::111111111111:role/B",
        "check": "kms:Decrypt",
        "status": "fail",
        "failing_since": now,
    }
    scan = ScanFindings(
        run_id=2,
        run_status="succeeded",
        finished_at=now,
        results=[row],
        drift=[{**row, "kind": "regressed", "current_status": "fail"}],
    )
    assert publish_all(outlets, scan) == {"securityhub": True, "ocsf": True, "sns": True}
    assert calls - UNGATED == OUTLET_ACTIONS


def test_docs_name_every_outlet_permission():
    text = (REPO / "docs" / "integrations.md").read_text()
    for action in sorted(OUTLET_ACTIONS):
        assert f"`{action}`" in text, action


def test_documented_outlet_settings_are_valid():
    text = (REPO / "docs" / "integrations.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        Settings.model_validate(yaml.safe_load(block))
