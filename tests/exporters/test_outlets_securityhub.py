"""Security Hub: ASFF findings valid against the SDK's model and the documented limits, and
the import / update / resolve lifecycle over three scans against moto's Security Hub."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from asff_validation import problems
from moto import mock_aws
from outlet_seed import record_scan

from exporters.outlets import ScanFindings, load_findings, publish_all
from exporters.outlets.securityhub import (
    MAX_FINDINGS_PER_REQUEST,
    SecurityHubOutlet,
    build_finding,
    finding_id,
    sync_findings,
)
from scanner import cli

A, B = "111111111111", "222222222222"
REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        session.client("securityhub").enable_security_hub()
        yield session


def _account(session: boto3.Session) -> str:
    return session.client("sts").get_caller_identity()["Account"]


def _hub(session: boto3.Session) -> dict[str, dict[str, Any]]:
    client = session.client("securityhub")
    found: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("get_findings").paginate():
        for item in page["Findings"]:
            assert item["Id"] not in found, "duplicated finding"
            found[item["Id"]] = item
    return found


def _key(account: str, check: str) -> str:
    return f"{account}|{REGION}|arn:aws:iam::{account}:role/BackupOperator|{check}"


def test_findings_are_valid_asff(engine, aws):
    record_scan(engine, {(A, "kms:CreateGrant"): "fail", (A, "backup:CreateBackupVault"): "fail"})
    scan = load_findings(engine)
    assert len(scan.failing) == 2
    account = _account(aws)
    for row in scan.failing:
        finding = build_finding(
            row,
            account_id=account,
            partition="aws",
            product=f"arn:aws:securityhub:{REGION}:{account}:product/{account}/default",
            observed_at=scan.finished_at,
            updated_at=datetime.now(UTC),
        )
        assert problems(finding) == []
        assert finding["Id"] == finding_id(row["check_key"])
        assert finding["Compliance"]["Status"] == "FAILED"
        assert "scp layer" in finding["Description"] and "DenyBackup" in finding["Description"]
        assert finding["Remediation"]["Recommendation"]["Text"].startswith("Narrow the SCP")
        types = {resource["Type"] for resource in finding["Resources"]}
        assert {"AwsIamRole", "AwsAccount"} <= types
        assert finding["ProductFields"]["vaultscan/AccountId"] == A
    kms = next(r for r in scan.failing if r["check"] == "kms:CreateGrant")
    kms_finding = build_finding(
        kms,
        account_id=account,
        partition="aws",
        product="p",
        observed_at=scan.finished_at,
        updated_at=scan.finished_at,
    )
    assert "AwsKmsKey" in {resource["Type"] for resource in kms_finding["Resources"]}


def test_the_validator_catches_bad_findings():
    assert any("Title" in p for p in problems({"Title": "x" * 300, "Id": 1}))
    assert any("CreatedAt" in p for p in problems({"CreatedAt": "yesterday"}))


def test_oversized_values_are_cut_to_the_limits(engine, aws):
    record_scan(engine, {(A, "kms:CreateGrant"): "fail"})
    row = dict(load_findings(engine).failing[0])
    row["message"] = "m" * 5000
    row["remediation"] = {
        "summary": "s" * 2000,
        "statement": {"Sid": "x" * 300_000},
        "commands": ["c" * 300_000],
    }
    account = _account(aws)
    finding = build_finding(
        row,
        account_id=account,
        partition="aws",
        product="p",
        observed_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
    )
    assert problems(finding) == []


def test_lifecycle_over_three_scans(engine, aws):
    account = _account(aws)
    client = aws.client("securityhub")
    grant, vault, decrypt = (
        finding_id(_key(A, "kms:CreateGrant")),
        finding_id(_key(A, "backup:CreateBackupVault")),
        finding_id(_key(B, "kms:Decrypt")),
    )

    # 1: two failing checks are imported
    record_scan(
        engine,
        {
            (A, "kms:CreateGrant"): "fail",
            (A, "backup:CreateBackupVault"): "fail",
            (B, "kms:Decrypt"): "pass",
        },
    )
    first = sync_findings(client, load_findings(engine), account_id=account, region=REGION)
    assert (first.imported, first.new, first.resolved, first.failed) == (2, 2, 0, [])
    hub = _hub(aws)
    assert set(hub) == {grant, vault}
    assert all(
        f["RecordState"] == "ACTIVE" and f["Compliance"]["Status"] == "FAILED" for f in hub.values()
    )
    assert all(f["AwsAccountId"] == account for f in hub.values())
    created, updated = hub[grant]["CreatedAt"], hub[grant]["UpdatedAt"]

    # 2: still failing ones are updated in place, a new failure is added
    record_scan(
        engine,
        {
            (A, "kms:CreateGrant"): "fail",
            (A, "backup:CreateBackupVault"): "fail",
            (B, "kms:Decrypt"): "fail",
        },
    )
    later = datetime.now(UTC) + timedelta(seconds=1)
    second = sync_findings(
        client, load_findings(engine), account_id=account, region=REGION, now=later
    )
    assert (second.imported, second.new, second.resolved) == (3, 1, 0)
    hub = _hub(aws)
    assert set(hub) == {grant, vault, decrypt}
    assert hub[grant]["CreatedAt"] == created  # the same failing streak
    assert hub[grant]["UpdatedAt"] > updated

    # 3: the fixed check is resolved (archived, passed); the others stay active
    record_scan(
        engine,
        {
            (A, "kms:CreateGrant"): "pass",
            (A, "backup:CreateBackupVault"): "fail",
            (B, "kms:Decrypt"): "fail",
        },
    )
    third = sync_findings(
        client,
        load_findings(engine),
        account_id=account,
        region=REGION,
        now=later + timedelta(seconds=1),
    )
    assert (third.imported, third.new, third.resolved) == (2, 0, 1)
    hub = _hub(aws)
    assert set(hub) == {grant, vault, decrypt}
    assert hub[grant]["RecordState"] == "ARCHIVED"
    assert hub[grant]["Compliance"]["Status"] == "PASSED"
    assert hub[grant]["CreatedAt"] == created
    assert {hub[i]["RecordState"] for i in (vault, decrypt)} == {"ACTIVE"}
    for finding in hub.values():
        assert problems(_as_imported(finding)) == []

    # an export with nothing new resolves nothing twice
    again = sync_findings(client, load_findings(engine), account_id=account, region=REGION)
    assert again.resolved == 0 and len(_hub(aws)) == 3


def _as_imported(finding: dict[str, Any]) -> dict[str, Any]:
    """What we sent, without what moto (like Security Hub) may add."""
    return {k: v for k, v in finding.items() if k not in ("ProductName", "CompanyName", "Region")}


class CountingClient:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.batches: list[int] = []

    def batch_import_findings(self, Findings: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.batches.append(len(Findings))
        return self._client.batch_import_findings(Findings=Findings)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_batches_of_at_most_100(aws):
    now = datetime.now(UTC)
    rows = [
        {
            "check_key": _key(f"{n:012d}", "kms:Decrypt"),
            "account_id": f"{n:012d}",
            "region": REGION,
            "role_arn": f"arn:aws:iam::{n:012d}:role/BackupOperator",
            "check": "kms:Decrypt",
            "status": "fail",
            "failing_since": now,
        }
        for n in range(250)
    ]
    scan = ScanFindings(run_id=1, run_status="succeeded", finished_at=now, results=rows)
    client = CountingClient(aws.client("securityhub"))
    result = sync_findings(client, scan, account_id=_account(aws), region=REGION)
    assert result.imported == 250 and not result.failed
    assert client.batches == [100, 100, 50]
    assert max(client.batches) <= MAX_FINDINGS_PER_REQUEST
    assert len(_hub(aws)) == 250


def test_rejected_findings_fail_the_outlet_not_the_caller(engine, aws):
    record_scan(engine, {(A, "kms:CreateGrant"): "fail"})

    class Rejecting(CountingClient):
        def batch_import_findings(self, Findings):  # noqa: N803
            return {
                "FailedCount": len(Findings),
                "SuccessCount": 0,
                "FailedFindings": [
                    {"Id": f["Id"], "ErrorCode": "InvalidInput", "ErrorMessage": "no"}
                    for f in Findings
                ],
            }

    outlet = SecurityHubOutlet(
        Rejecting(aws.client("securityhub")),
        account_id=_account(aws),
        region=REGION,
        partition="aws",
    )
    assert publish_all([outlet], load_findings(engine)) == {"securityhub": False}


def test_export_command(engine, database_url, aws, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAULTSCAN_CONFIG", raising=False)
    record_scan(engine, {(A, "kms:CreateGrant"): "fail", (B, "kms:Decrypt"): "pass"})
    base = ["export", "securityhub", "--database-url", database_url, "--region", REGION]
    assert cli.main([*base, "--dry-run"]) == 0
    import json

    printed = json.loads(capsys.readouterr().out)
    assert [f["Id"] for f in printed] == [finding_id(_key(A, "kms:CreateGrant"))]
    assert _hub(aws) == {}  # a dry run imports nothing
    assert cli.main(base) == 0
    assert "1 failing check(s) imported (1 new), 0 resolved" in capsys.readouterr().out
    assert len(_hub(aws)) == 1


def test_a_gone_check_is_archived_as_not_available(aws):
    """A check whose role was deleted is no longer in the results at all."""
    now = datetime.now(UTC)
    account = _account(aws)
    row = {
        "check_key": _key(A, "kms:Decrypt"),
        "account_id": A,
        "region": REGION,
        "role_arn": f"arn:aws:iam::{A}:role/BackupOperator",
        "check": "kms:Decrypt",
        "status": "fail",
        "failing_since": now,
    }
    client = aws.client("securityhub")
    failing = ScanFindings(run_id=1, run_status="succeeded", finished_at=now, results=[row])
    assert sync_findings(client, failing, account_id=account, region=REGION).new == 1
    gone = ScanFindings(run_id=2, run_status="succeeded", finished_at=now, results=[])
    assert sync_findings(client, gone, account_id=account, region=REGION).resolved == 1
    [finding] = _hub(aws).values()
    assert finding["RecordState"] == "ARCHIVED"
    assert finding["Compliance"]["Status"] == "NOT_AVAILABLE"
    assert problems(_as_imported(finding)) == []
