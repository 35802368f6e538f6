"""OCSF Compliance Finding events: valid against the OCSF schema shipped in pydantic-ocsf,
written as JSON lines to a file and to S3 (moto), and a broken event is refused."""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from moto import mock_aws
from outlet_seed import record_scan
from sqlalchemy import Engine

from exporters.outlets import load_findings
from exporters.outlets.ocsf import (
    CLASS_NAME,
    OCSF_VERSION,
    InvalidEvent,
    OcsfOutlet,
    build_events,
    validate,
)
from exporters.outlets.ocsf_schema import Validator
from exporters.outlets.securityhub import finding_id
from scanner import cli

A, B = "111111111111", "222222222222"
REGION = "eu-west-1"


def _scans(engine: Engine) -> None:
    record_scan(
        engine,
        {
            (A, "kms:CreateGrant"): "pass",
            (B, "kms:Decrypt"): "fail",
            (B, "backup:CreateBackupVault"): "fail",
        },
    )
    record_scan(
        engine,
        {
            (A, "kms:CreateGrant"): "fail",
            (B, "kms:Decrypt"): "pass",
            (B, "backup:CreateBackupVault"): "fail",
        },
    )


def test_events_validate_against_the_schema(engine):
    _scans(engine)
    events = build_events(load_findings(engine))
    validator = Validator(OCSF_VERSION)
    assert validator.version == OCSF_VERSION
    assert len(events) == 3
    for event in events:
        assert validator.validate_event(event, CLASS_NAME) == []
    by_activity = {e["activity_name"]: e for e in events}
    assert set(by_activity) == {"Create", "Update", "Close"}
    created = by_activity["Create"]  # A's check regressed in this scan
    assert created["cloud"]["account"]["uid"] == A
    assert created["compliance"]["status"] == "Fail"
    assert created["finding_info"]["uid"] == finding_id(
        f"{A}|{REGION}|arn:aws:iam::{A}:role/BackupOperator|kms:CreateGrant"
    )
    assert "statement DenyBackup" in created["finding_info"]["desc"]
    assert created["remediation"]["desc"].startswith("Narrow the SCP")
    closed = by_activity["Close"]
    assert closed["compliance"]["status"] == "Pass" and closed["status"] == "Resolved"
    assert by_activity["Update"]["finding_info"]["first_seen_time"] < created["time"]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda e: e.pop("finding_info"),  # required
        lambda e: e.update(severity_id=12),  # not in the enum
        lambda e: e.update(severity="Low"),  # caption does not match severity_id
        lambda e: e.update(time="2026-01-01"),  # timestamp_t is epoch milliseconds
        lambda e: e.update(class_uid=2004),  # another class
        lambda e: e.update(activity_id=3),  # type_uid no longer matches
        lambda e: e["compliance"].update(status_id="3"),  # integer_t
        lambda e: e.update(colour="blue"),  # not an attribute
        lambda e: e["finding_info"].pop("uid"),  # required in the object
    ],
)
def test_broken_events_are_refused(engine, breakage):
    _scans(engine)
    event = copy.deepcopy(build_events(load_findings(engine))[0])
    breakage(event)
    assert Validator(OCSF_VERSION).validate_event(event, CLASS_NAME) != []
    with pytest.raises(InvalidEvent):
        validate([event])


def test_file_and_s3(engine, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    _scans(engine)
    scan = load_findings(engine)
    path = tmp_path / "findings.ocsf.jsonl"
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="lake", CreateBucketConfiguration={"LocationConstraint": REGION})
        outlet = OcsfOutlet(path=path, s3_client=s3, s3_uri="s3://lake/vaultscan")
        outlet.publish(scan)
        outlet.publish(scan)  # the file is appended to; S3 gets one object per run
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]
        body = s3.get_object(Bucket="lake", Key=keys[0])["Body"].read().decode()
    assert len(keys) == 1 and keys[0].startswith(f"vaultscan/vaultscan-run-{scan.run_id}-")
    lines = path.read_text().splitlines()
    assert len(lines) == 6
    assert [json.loads(line) for line in body.splitlines()] == [json.loads(x) for x in lines[:3]]


def test_export_command_to_stdout(engine, database_url, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)
    _scans(engine)
    assert cli.main(["export", "ocsf", "--database-url", database_url]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(events) == 3 and {e["class_uid"] for e in events} == {2003}
    target = tmp_path / "out.jsonl"
    assert (
        cli.main(["export", "ocsf", "--database-url", database_url, "--output", str(target)]) == 0
    )
    assert len(target.read_text().splitlines()) == 3
