"""AwsSimulator against a stubbed iam:SimulatePrincipalPolicy: grouping, context types,
pagination, decision mapping, both response shapes."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from scanner.aws.collect import simulation_requests
from scanner.aws.ratelimit import RetryPolicy, Throttle
from scanner.aws.simulator import AwsSimulator, SimulatorError, context_entry
from scanner.config import load_settings
from scanner.model import Account, KmsKey, Organization, Role
from scanner.profiles import load_profiles

ROLE = Role(arn="arn:aws:iam::111122223333:role/BackupOperator", name="BackupOperator")
ACCOUNT = Account(id="111122223333", name="prod")
KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VAULTS = "arn:aws:backup:eu-west-1:111122223333:backup-vault:*"
REGION_ONLY = {"aws:RequestedRegion": "eu-west-1"}
VIA_BACKUP = {**REGION_ONLY, "kms:ViaService": "backup.eu-west-1.amazonaws.com"}


@pytest.fixture
def iam(aws_env: None) -> Any:
    return boto3.Session().client("iam", region_name="us-east-1")


def per_resource(action: str, *pairs: tuple[str, str], org: bool | None = True) -> dict:
    """The current response shape: one result per action, decisions per resource."""
    result: dict[str, Any] = {
        "EvalActionName": action,
        "EvalResourceName": "*",
        "EvalDecision": "implicitDeny",
        "ResourceSpecificResults": [
            {
                "EvalResourceName": resource,
                "EvalResourceDecision": decision,
                "MatchedStatements": [{"SourcePolicyId": f"{action}-{resource[-4:]}"}],
                "PermissionsBoundaryDecisionDetail": {"AllowedByPermissionsBoundary": True},
            }
            for resource, decision in pairs
        ],
    }
    if org is not None:
        result["OrganizationsDecisionDetail"] = {"AllowedByOrganizations": org}
    return result


def test_context_entry_types() -> None:
    assert context_entry("kms:GrantIsForAWSResource", True) == {
        "ContextKeyName": "kms:GrantIsForAWSResource",
        "ContextKeyType": "boolean",
        "ContextKeyValues": ["true"],
    }
    assert context_entry("kms:ViaService", "backup.eu-west-1.amazonaws.com")["ContextKeyType"] == (
        "string"
    )
    assert context_entry("kms:CallerAccount", "111122223333")["ContextKeyType"] == "string"
    assert context_entry("aws:MultiFactorAuthAge", 300) == {
        "ContextKeyName": "aws:MultiFactorAuthAge",
        "ContextKeyType": "numeric",
        "ContextKeyValues": ["300"],
    }
    assert context_entry("aws:SourceIp", "10.0.0.0/8")["ContextKeyType"] == "ip"
    listed = context_entry("aws:TagKeys", ["team", "env"])
    assert listed["ContextKeyType"] == "stringList" and listed["ContextKeyValues"] == [
        "team",
        "env",
    ]
    assert context_entry("x:Flags", [True, False])["ContextKeyType"] == "booleanList"
    with pytest.raises(ValueError, match="mixed"):
        context_entry("x:Mixed", ["a", 1])


def test_groups_by_context_and_keeps_requested_pairs(iam: Any) -> None:
    requests = [
        ("backup:CreateBackupVault", VAULTS, REGION_ONLY),
        ("backup-storage:MountCapsule", "*", REGION_ONLY),
        ("kms:Decrypt", KEY, VIA_BACKUP),
        ("kms:GenerateDataKey", KEY, VIA_BACKUP),
    ]
    with Stubber(iam) as stub:
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    # every action is evaluated on every resource; only asked pairs are kept
                    per_resource(
                        "backup:CreateBackupVault", (VAULTS, "allowed"), ("*", "implicitDeny")
                    ),
                    per_resource(
                        "backup-storage:MountCapsule", (VAULTS, "allowed"), ("*", "explicitDeny")
                    ),
                ],
                "IsTruncated": False,
            },
            {
                "PolicySourceArn": ROLE.arn,
                "ActionNames": ["backup:CreateBackupVault", "backup-storage:MountCapsule"],
                "ResourceArns": [VAULTS, "*"],
                "ContextEntries": [
                    {
                        "ContextKeyName": "aws:RequestedRegion",
                        "ContextKeyType": "string",
                        "ContextKeyValues": ["eu-west-1"],
                    }
                ],
                "MaxItems": ANY,
            },
        )
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    per_resource("kms:Decrypt", (KEY, "allowed"), org=None),
                    per_resource("kms:GenerateDataKey", (KEY, "implicitDeny"), org=False),
                ],
                "IsTruncated": False,
            },
            {
                "PolicySourceArn": ROLE.arn,
                "ActionNames": ["kms:Decrypt", "kms:GenerateDataKey"],
                "ResourceArns": [KEY],
                "ContextEntries": [context_entry(k, v) for k, v in VIA_BACKUP.items()],
                "MaxItems": ANY,
            },
        )
        answers = AwsSimulator().simulate(iam, ROLE, ACCOUNT, "eu-west-1", requests)
        stub.assert_no_pending_responses()

    assert [(a.action, a.resource, a.decision) for a in answers] == [
        ("backup:CreateBackupVault", VAULTS, "allowed"),
        ("backup-storage:MountCapsule", "*", "explicitDeny"),
        ("kms:Decrypt", KEY, "allowed"),
        ("kms:GenerateDataKey", KEY, "implicitDeny"),
    ]
    assert answers[1].matched_statements == ("backup-storage:MountCapsule-*",)
    assert answers[0].allowed_by_organizations is True
    assert answers[2].allowed_by_organizations is None
    assert answers[3].allowed_by_organizations is False
    assert all(a.allowed_by_boundary is True and a.source == "aws" for a in answers)


def test_follows_markers_and_reads_the_older_per_pair_shape(iam: Any) -> None:
    requests = [("kms:CreateGrant", KEY, VIA_BACKUP), ("kms:DescribeKey", KEY, VIA_BACKUP)]
    old_shape = {
        "EvalActionName": "kms:DescribeKey",
        "EvalResourceName": KEY,
        "EvalDecision": "explicitDeny",
        "MatchedStatements": [{"SourcePolicyId": "Fence"}],
        "PermissionsBoundaryDecisionDetail": {"AllowedByPermissionsBoundary": False},
    }
    with Stubber(iam) as stub:
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [per_resource("kms:CreateGrant", (KEY, "allowed"))],
                "IsTruncated": True,
                "Marker": "page-2",
            },
        )
        stub.add_response(
            "simulate_principal_policy",
            {"EvaluationResults": [old_shape], "IsTruncated": False},
            {
                "PolicySourceArn": ROLE.arn,
                "ActionNames": ["kms:CreateGrant", "kms:DescribeKey"],
                "ResourceArns": [KEY],
                "ContextEntries": ANY,
                "MaxItems": 1,
                "Marker": "page-2",
            },
        )
        answers = AwsSimulator(page_size=1).simulate(iam, ROLE, ACCOUNT, "eu-west-1", requests)
        stub.assert_no_pending_responses()
    assert [a.decision for a in answers] == ["allowed", "explicitDeny"]
    assert answers[1].matched_statements == ("Fence",)
    assert answers[1].allowed_by_boundary is False


def test_throttled_simulation_is_retried(iam: Any) -> None:
    sleeps: list[float] = []
    # retries are botocore's (standard mode) in production; a Stubber answers before them,
    # so the scanner's own retry is switched on here to exercise the simulator's loop
    retry = RetryPolicy(max_attempts=2, sleep=sleeps.append)
    simulator = AwsSimulator(throttle=Throttle(retry=retry))
    with Stubber(iam) as stub:
        stub.add_client_error("simulate_principal_policy", "Throttling", "Rate exceeded")
        stub.add_response(
            "simulate_principal_policy",
            {"EvaluationResults": [per_resource("kms:Decrypt", (KEY, "allowed"))]},
        )
        answers = simulator.simulate(iam, ROLE, ACCOUNT, "eu-west-1", [("kms:Decrypt", KEY, {})])
    assert answers[0].decision == "allowed" and len(sleeps) == 1


def test_missing_or_unknown_answers_are_errors(iam: Any) -> None:
    with Stubber(iam) as stub:
        stub.add_response("simulate_principal_policy", {"EvaluationResults": []})
        with pytest.raises(SimulatorError, match="no answer for kms:Decrypt"):
            AwsSimulator().simulate(iam, ROLE, ACCOUNT, "eu-west-1", [("kms:Decrypt", KEY, {})])
    with Stubber(iam) as stub:
        weird = per_resource("kms:Decrypt", (KEY, "allowed"))
        weird["ResourceSpecificResults"][0]["EvalResourceDecision"] = "maybe"
        stub.add_response("simulate_principal_policy", {"EvaluationResults": [weird]})
        with pytest.raises(SimulatorError, match="unknown simulator decision"):
            AwsSimulator().simulate(iam, ROLE, ACCOUNT, "eu-west-1", [("kms:Decrypt", KEY, {})])


class RecordingIam:
    """Answers every (action, resource) `allowed` and records each call's parameters."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def simulate_principal_policy(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        results = [
            per_resource(action, *[(resource, "allowed") for resource in params["ResourceArns"]])
            for action in params["ActionNames"]
        ]
        return {"EvaluationResults": results, "IsTruncated": False}


def test_backup_vault_create_takes_one_call_per_context() -> None:
    """The counts in docs/read-role.md: 4 calls with a key (the vault, MountCapsule on
    '*' without resource keys, CreateGrant, the other key actions), 2 when the key is not
    created."""
    [profile] = load_profiles(load_settings(overrides={}))
    key = KmsKey(arn=KEY, key_id="k", region="eu-west-1", tags={"purpose": "backup"})
    missing = KmsKey(
        arn="arn:aws:kms:us-east-1:111122223333:alias/aws/backup",
        key_id="",
        region="us-east-1",
        key_state="NotCreated",
    )
    org = Organization(None, [ACCOUNT], id="o-abcdefghij")
    facts = {"organization": org, "role": ROLE}
    with_key = simulation_requests([profile], "aws", "eu-west-1", ACCOUNT, [key], **facts)
    without = simulation_requests([profile], "aws", "us-east-1", ACCOUNT, [missing], **facts)

    iam = RecordingIam()
    answers = AwsSimulator().simulate(iam, ROLE, ACCOUNT, "eu-west-1", with_key)
    assert len(iam.calls) == 4 and len(answers) == 7
    grant_call = next(c for c in iam.calls if c["ActionNames"] == ["kms:CreateGrant"])
    entries = {e["ContextKeyName"]: e for e in grant_call["ContextEntries"]}
    assert {
        "aws:RequestedRegion",
        "kms:ViaService",
        "kms:CallerAccount",
        "kms:GrantIsForAWSResource",
        "aws:PrincipalArn",
        "aws:PrincipalOrgID",
        "aws:ViaAWSService",
        "aws:ResourceAccount",
        "aws:ResourceTag/purpose",
        "aws:CurrentTime",
    } <= set(entries)
    assert entries["kms:GrantIsForAWSResource"]["ContextKeyType"] == "boolean"
    assert entries["aws:ViaAWSService"]["ContextKeyValues"] == ["true"]
    assert entries["aws:CurrentTime"]["ContextKeyType"] == "date"
    assert entries["aws:EpochTime"]["ContextKeyType"] == "numeric"
    assert entries["aws:ResourceTag/purpose"]["ContextKeyValues"] == ["backup"]
    assert [(a.action, a.resource) for a in answers] == [(a, r) for a, r, _ in with_key]

    iam = RecordingIam()
    answers = AwsSimulator().simulate(iam, ROLE, ACCOUNT, "us-east-1", without)
    assert len(iam.calls) == 2
    assert [a.action for a in answers] == [
        "backup:CreateBackupVault",
        "backup-storage:MountCapsule",
    ]
