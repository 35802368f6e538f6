"""The member read role grants exactly what a scan performs.

A full sandbox scan (moto, through the runner, every client counted by a CallRecorder)
lists every AWS operation the scanner performs, per account. The member read policy must
cover each operation made inside member accounts and grant nothing the scanner never
calls; the same holds for the Organizations reads and the scanner's own AssumeRole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from scanner.aws.calls import AMBIENT, ASSUME_ROLE, CallRecorder
from scanner.aws.permissions import ORG_READ_ACTIONS, SCANNER_ACTIONS
from scanner.aws.session import AwsSessions
from scanner.aws.simulator import AwsSimulator
from scanner.iam_policy import member_read_policy, org_read_policy
from scanner.model import Account, Role
from scanner.runner import run_scan
from scanner.sandbox import sandbox_settings, seed_sandbox_organization
from scanner.sandbox_aws import one_request_at_a_time
from storage.db import make_engine
from storage.migrate import upgrade

# Granted but not performed in the moto sandbox, each covered another way:
# iam:SimulatePrincipalPolicy - moto has no policy simulator, so the sandbox scan uses
#   vaultscan's engine; test_aws_simulator_calls_only_simulate_principal_policy drives
#   the real AwsSimulator through a botocore Stubber instead.
NOT_EXERCISED_BY_SANDBOX = {"iam:SimulatePrincipalPolicy"}
ORG_ROLE_NAME = "VaultscanOrganizationReader"


def actions_of(policy: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in policy["Statement"]:
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/vaultscan-test-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/vaultscan-test-credentials")
    for name in [key for key in os.environ if key.startswith("VAULTSCAN_")]:
        monkeypatch.delenv(name)


def coverage_settings(sandbox: Any) -> Any:
    """The sandbox settings, widened so every optional read path runs: a tag criterion
    (iam:ListRoleTags on roles the name and path do not select), the Organizations
    reader role (an AssumeRole into the management account, as in production) and the
    report's owner tag (organizations:ListTagsForResource)."""
    base = sandbox_settings(sandbox)
    roles = base.roles.model_dump() | {"tag": {"key": "vaultscan:backup-role"}}
    organization = base.organization.model_dump() | {
        "role_arn": f"arn:aws:iam::{sandbox.management_account_id}:role/{ORG_ROLE_NAME}"
    }
    # the owner tag the report groups by: organizations:ListTagsForResource per account
    report = {"owner_tag": "team"}
    return sandbox_settings(sandbox, roles=roles, organization=organization, report=report)


@dataclass
class ScanCalls:
    full: CallRecorder  # the whole organization
    narrow: CallRecorder  # one account: few policy targets, the other attachment listing
    sandbox: Any


def scan(session: boto3.Session, settings: Any, engine: Any) -> CallRecorder:
    recorder = CallRecorder()
    sessions = AwsSessions(settings, session=session, recorder=recorder)
    report = run_scan(settings, engine=engine, sessions=sessions, recorder=recorder)
    assert report.summary.outcomes, "the scan read no account"
    return recorder


@pytest.fixture
def scan_calls(aws_env: None, database_url: str) -> Iterator[ScanCalls]:
    """Every call of a full sandbox scan and of a one-account scan of the same sandbox.

    The one-account scan reads roles with the per-role IAM calls, the full one with
    iam:GetAccountAuthorizationDetails. Organizations attachments are listed whichever way
    costs fewer calls: per policy
    (ListPolicies + ListTargetsForPolicy) for the whole organization, per target
    (ListPoliciesForTarget) when one account leaves fewer targets than policies.
    """
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with mock_aws(), one_request_at_a_time():
            session = boto3.Session(region_name="us-east-1")
            sandbox = seed_sandbox_organization(session)
            settings = coverage_settings(sandbox)
            full = scan(session, settings, engine)
            one = min(sandbox.accounts, key=lambda account: len(account.ou_names)).account_id
            narrow_settings = settings.model_copy(
                update={
                    "accounts": settings.accounts.model_copy(update={"include": [one]}),
                    # the per-role IAM reads (the fallback for older read roles)
                    "iam_read": "per-role",
                }
            )
            narrow = scan(session, narrow_settings, engine)
            yield ScanCalls(full=full, narrow=narrow, sandbox=sandbox)
    finally:
        engine.dispose()


def test_policies_match_what_a_full_scan_performs(scan_calls: ScanCalls) -> None:
    # one test, one pair of scans: seeding and scanning the sandbox takes seconds
    recorder, sandbox = scan_calls.full, scan_calls.sandbox
    # member accounts: the read role
    members = {account.account_id for account in sandbox.accounts}
    member_ops: set[str] = set()
    for account_id in members:
        for calls in (recorder, scan_calls.narrow):
            member_ops |= set(calls.for_account(account_id)) - {ASSUME_ROLE}
    assert member_ops, "no call was made inside a member account"
    granted = actions_of(member_read_policy())
    assert member_ops - granted == set(), "performed in member accounts but not granted"
    assert granted - member_ops == NOT_EXERCISED_BY_SANDBOX, "granted but never performed"

    # Organizations is read through the org reader role in the management account
    management = sandbox.management_account_id
    org_ops = set()
    for calls in (scan_calls.full, scan_calls.narrow):
        org_ops |= set(calls.for_account(management)) - {ASSUME_ROLE}
        assert calls.for_account(management)[ASSUME_ROLE] >= 1
    assert org_ops == actions_of(org_read_policy()) == set(ORG_READ_ACTIONS), (
        "the two scans must perform every granted Organizations action, and only those"
    )

    # the scanner's own identity only assumes roles: once per member account and into
    # the org reader, nothing else
    entered = {
        account_id for account_id, counts in recorder.by_account.items() if counts.get(ASSUME_ROLE)
    }
    assert entered == members | {management}
    assert all(recorder.for_account(account_id)[ASSUME_ROLE] == 1 for account_id in members)
    assert set(recorder.for_account(AMBIENT)) <= set(SCANNER_ACTIONS)
    assert set(SCANNER_ACTIONS) == {ASSUME_ROLE}
    everything = set(recorder.actions()) | set(scan_calls.narrow.actions())
    assert everything <= actions_of(member_read_policy()) | org_ops | set(SCANNER_ACTIONS)


def test_aws_simulator_calls_only_simulate_principal_policy(aws_env: None) -> None:
    iam = boto3.Session(region_name="us-east-1").client("iam")
    recorder = CallRecorder()
    recorder.attach(iam, "111122223333")
    role = Role(arn="arn:aws:iam::111122223333:role/backup/BackupOperator", name="BackupOperator")
    vault = "arn:aws:backup:us-east-1:111122223333:backup-vault:*"
    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    requests = [
        ("backup:CreateBackupVault", vault, {}),
        ("kms:CreateGrant", key, {"kms:GrantIsForAWSResource": True}),
    ]
    with Stubber(iam) as stub:
        for action, resource, _ in requests:
            stub.add_response(
                "simulate_principal_policy",
                {
                    "EvaluationResults": [
                        {
                            "EvalActionName": action,
                            "EvalResourceName": resource,
                            "EvalDecision": "allowed",
                        }
                    ],
                    "IsTruncated": False,
                },
                {
                    "PolicySourceArn": role.arn,
                    "ActionNames": [action],
                    "ResourceArns": [resource],
                    "MaxItems": ANY,
                    **({"ContextEntries": ANY} if action.startswith("kms") else {}),
                },
            )
        answers = AwsSimulator().simulate(
            iam, role, Account(id="111122223333", name="prod"), "us-east-1", requests
        )
        stub.assert_no_pending_responses()
    assert [answer.decision for answer in answers] == ["allowed", "allowed"]
    assert set(recorder.actions()) == {"iam:SimulatePrincipalPolicy"}
    assert set(recorder.actions()) <= actions_of(member_read_policy())
    assert NOT_EXERCISED_BY_SANDBOX == set(recorder.actions())
