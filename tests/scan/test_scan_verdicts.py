"""Every planted cause of the sandbox is reported at the right layer, with the right policy,
statement and fix; healthy accounts pass. Expectations come from the sandbox's hand-written
layout (scanner/sandbox_data/layout.py), never from the engine's own output."""

from __future__ import annotations

import pytest
from sandbox_checks import assert_account_verdicts

from scanner.aws.collect import collect_account
from scanner.aws.organizations import discover
from scanner.decide import KEY_STATE_CHECK, decide_account
from scanner.engine_simulator import EngineSimulator
from scanner.model import CheckResult
from scanner.profiles import load_profiles
from scanner.sandbox_data.layout import ACCOUNT_PLANS


@pytest.fixture(scope="module")
def verdicts(seeded) -> dict[str, list[CheckResult]]:
    """account name -> its verdicts, scanned through moto with the engine simulator."""
    sessions = seeded.sessions()
    organization = discover(sessions, seeded.settings)
    profiles = load_profiles(seeded.settings)
    simulator = EngineSimulator(organization)
    out = {}
    for account in organization.accounts:
        collection = collect_account(
            sessions, seeded.settings, profiles, account, organization, simulator
        )
        assert collection.error is None, collection.error
        name = seeded.sandbox.account(account.id).name
        out[name] = decide_account(
            organization, collection, profiles, regions=list(seeded.settings.regions)
        )
    return out


def test_every_sandbox_account_is_scanned(seeded, verdicts):
    assert set(verdicts) == {plan.name for plan in ACCOUNT_PLANS}
    assert len(verdicts) >= 12
    assert len(seeded.sandbox.healthy_accounts) >= 3


@pytest.mark.parametrize("name", [plan.name for plan in ACCOUNT_PLANS])
def test_each_account_gets_its_expected_verdict(seeded, verdicts, name):
    assert_account_verdicts(seeded.sandbox, name, verdicts[name], "sandbox-engine")


def _failures(verdicts, name):
    failing = [r for r in verdicts[name] if r.status == "fail"]
    assert failing, f"{name} was planted with a failure"
    return failing


def test_missing_mount_capsule_fix_is_the_documented_statement(seeded, verdicts):
    [first, *_] = _failures(verdicts, "prod-orders")
    fix = first.remediation
    assert fix.target == seeded.sandbox.by_name("prod-orders").role_arn
    assert fix.statement == {
        "Effect": "Allow",
        "Action": ["backup-storage:MountCapsule"],
        "Resource": "*",
    }
    assert "No identity policy of role BackupOperator allows backup-storage:MountCapsule" in (
        first.message
    )


def test_boundary_fix_names_the_boundary_and_the_key(seeded, verdicts):
    account = seeded.sandbox.by_name("prod-search")
    for result in _failures(verdicts, "prod-search"):
        fix = result.remediation
        assert fix.target.endswith(":policy/BackupBoundary")
        assert fix.statement["Action"] == ["kms:CreateGrant"]
        assert fix.statement["Resource"] == account.key_arns[result.region]
        assert "create-policy-version" in fix.commands[0]


def test_scp_deny_names_the_ou_policy_and_statement(verdicts):
    for result in _failures(verdicts, "legacy-billing"):
        assert result.message.startswith("SCP p-")
        assert "(DenyBackupVaultCreation) at OU Legacy, statement DenyVaults" in result.message
        fix = result.remediation
        assert fix.offending_statement["Sid"] == "DenyVaults"
        assert fix.statement["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == (result.role_arn)
        assert fix.target.startswith("p-")


def test_scp_allow_list_says_which_level_lacks_the_action(verdicts):
    for result in _failures(verdicts, "sandbox-research"):
        assert "at OU Sandbox" in result.message
        fix = result.remediation
        assert fix.statement["Action"] == ["backup-storage:MountCapsule"]
        assert "SandboxAllowedServices" in fix.summary


def test_key_policy_without_root_restores_the_default_statement(seeded, verdicts):
    account = seeded.sandbox.by_name("prod-media")
    for result in _failures(verdicts, "prod-media"):
        assert result.remediation.statement == {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account.account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
        assert result.remediation.target == account.key_arns[result.region]


def test_key_policy_deny_that_names_the_role_is_removed_not_exempted(verdicts):
    for result in _failures(verdicts, "prod-ledger"):
        fix = result.remediation
        assert fix.offending_statement["Sid"] == "DenyGrantsForBackupOperator"
        assert fix.statement is None
        assert "remove the statement" in fix.summary


def test_key_state_fixes_are_the_kms_commands(seeded, verdicts):
    for name, commands in (
        ("security-logs", ["enable-key"]),
        ("security-archive", ["cancel-key-deletion", "enable-key"]),
    ):
        account = seeded.sandbox.by_name(name)
        for result in _failures(verdicts, name):
            key = account.key_arns[result.region]
            assert [c.split()[2] for c in result.remediation.commands] == commands
            assert all(
                f"--key-id {key} --region {result.region}" in c for c in result.remediation.commands
            )


def test_rcp_deny_is_reported_at_the_account_level(seeded, verdicts):
    account = seeded.sandbox.by_name("security-forensics")
    for result in _failures(verdicts, "security-forensics"):
        assert f"at account {account.account_id}" in result.message
        assert result.remediation.kind == "edit-rcp-deny"


def test_rcp_does_not_apply_to_the_aws_managed_key(seeded, verdicts):
    """security-vault-default: aws/backup under the RCP that fails security-forensics."""
    account = seeded.sandbox.by_name("security-vault-default")
    grants = [r for r in verdicts["security-vault-default"] if r.check == "kms:CreateGrant"]
    assert len(grants) == len(seeded.sandbox.regions)
    for result in grants:
        assert result.status == "pass", result.message
        assert result.resource == account.key_arns[result.region]
        assert result.scenario["request"]["key_manager"] == "AWS"
        # the account's RCP is in the scenario, and the engine says why it does not count
        assert any(
            "DenyKmsGrantCreation" in name
            for level in result.scenario["policy_names"]["rcps"]
            for name in level
        )
        [rcp] = [layer for layer in result.explanation["layers"] if layer["layer"] == "rcp"]
        assert rcp["reason"] == "rcp-aws-managed-key"
        assert "AWS managed keys" in rcp["note"]


def test_every_verdict_carries_a_replayable_scenario(verdicts, tmp_path):
    """Each stored scenario, written to a file and read back by `vaultscan explain`'s
    loader, replays to the stored verdict and the stored explanation."""
    import json

    from scanner.policy import load_scenarios
    from scanner.policy.explain import answer

    stored = [
        result
        for results in verdicts.values()
        for result in results
        if result.check_id.name != KEY_STATE_CHECK and result.scenario is not None
    ]
    assert len(stored) > 100
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps([result.scenario for result in stored]))
    replayed = [answer(item) for item in load_scenarios([path])]
    assert len(replayed) == len(stored)
    for result, replay in zip(stored, replayed, strict=True):
        assert replay.agrees is True, (result.check, replay)
        assert replay.evaluation.decision == result.decision
        assert replay.evaluation.deciding_layer == result.deciding_layer
        assert replay.evaluation.to_dict() == result.explanation
