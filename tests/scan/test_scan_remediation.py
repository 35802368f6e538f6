"""Fixes as data: merged identity statements per role, exemptions for denies, key states."""

from __future__ import annotations

from scanner.remediation import Finding, fix_for, key_state_fix, merge_fixes

ROLE = "arn:aws:iam::444455556666:role/BackupOperator"
KEY = "arn:aws:kms:us-west-2:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VAULTS = "arn:aws:backup:us-west-2:444455556666:backup-vault:*"


def _identity_gap(action: str, resource: str) -> Finding:
    return Finding(
        account_id="444455556666",
        region="us-west-2",
        role_arn=ROLE,
        action=action,
        resource=resource,
        layer="identity",
        decision="implicitDeny",
    )


def test_identity_gaps_of_a_role_merge_into_awss_example_policy():
    fixes = [
        fix_for(_identity_gap(action, KEY))
        for action in (
            "kms:CreateGrant",
            "kms:DescribeKey",
            "kms:RetireGrant",
            "kms:Decrypt",
            "kms:GenerateDataKey",
        )
    ]
    fixes.append(fix_for(_identity_gap("backup:CreateBackupVault", VAULTS)))
    fixes.append(fix_for(_identity_gap("backup-storage:MountCapsule", "*")))
    assert {fix.kind for fix in fixes} == {"add-identity-statement"}
    # The documented example (AWS Knowledge Center), with its own ARNs.
    assert merge_fixes(fixes, "add-identity-statement") == {
        ROLE: {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "CreateBackupVaults",
                    "Effect": "Allow",
                    "Action": ["backup:CreateBackupVault"],
                    "Resource": VAULTS,
                },
                {
                    "Sid": "MountBackupStorage",
                    "Effect": "Allow",
                    "Action": ["backup-storage:MountCapsule"],
                    "Resource": "*",
                },
                {
                    "Sid": "UseVaultKey",
                    "Effect": "Allow",
                    "Action": [
                        "kms:CreateGrant",
                        "kms:Decrypt",
                        "kms:DescribeKey",
                        "kms:GenerateDataKey",
                        "kms:RetireGrant",
                    ],
                    "Resource": KEY,
                },
            ],
        }
    }


def test_vault_resource_is_the_vault_pattern_of_the_region():
    fix = fix_for(
        _identity_gap(
            "backup:CreateBackupVault", "arn:aws:backup:us-west-2:444455556666:backup-vault:*"
        )
    )
    assert fix.statement["Resource"] == VAULTS


def test_boundary_fixes_merge_per_boundary_policy():
    boundary = "arn:aws:iam::444455556666:policy/Boundary"
    fixes = [
        fix_for(
            Finding(
                "444455556666",
                region,
                ROLE,
                "kms:CreateGrant",
                KEY.replace("us-west-2", region),
                "permissions_boundary",
                "implicitDeny",
                policy=boundary,
                policy_id=boundary,
            )
        )
        for region in ("us-west-2", "eu-west-1")
    ]
    merged = merge_fixes(fixes, "add-boundary-statement")
    [statement] = merged[boundary]["Statement"]
    assert statement["Action"] == ["kms:CreateGrant"]
    assert statement["Resource"] == sorted(
        KEY.replace("us-west-2", r) for r in ("us-west-2", "eu-west-1")
    )


def test_scp_deny_gets_an_exception_for_the_role_keeping_existing_conditions():
    deny = {
        "Sid": "DenyVaults",
        "Effect": "Deny",
        "Action": "backup:*",
        "Resource": "*",
        "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/Admin"}},
    }
    fix = fix_for(
        Finding(
            "444455556666",
            "us-west-2",
            ROLE,
            "backup:CreateBackupVault",
            VAULTS,
            "scp",
            "explicitDeny",
            policy="p-12345678 (NoBackup)",
            policy_id="p-12345678",
            level="OU Prod",
            statement_label="DenyVaults",
            statement_doc=deny,
        )
    )
    assert fix.kind == "edit-scp-deny"
    assert fix.statement["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == [
        "arn:aws:iam::*:role/Admin",
        ROLE,
    ]
    assert deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == "arn:aws:iam::*:role/Admin"
    assert "at OU Prod" in fix.summary and "DenyVaults" in fix.summary
    assert fix.commands[1].startswith("aws organizations update-policy --policy-id p-12345678")


def test_scp_level_without_any_policy_says_to_attach_one():
    fix = fix_for(
        Finding(
            "444455556666",
            "us-west-2",
            ROLE,
            "backup:CreateBackupVault",
            VAULTS,
            "scp",
            "implicitDeny",
            level="OU Sandbox",
        )
    )
    assert fix.kind == "extend-scp-allow-list"
    assert "No SCP is attached at OU Sandbox" in fix.summary


def test_key_policy_gap_with_account_statement_adds_a_role_statement():
    fix = fix_for(
        Finding(
            "444455556666",
            "us-west-2",
            ROLE,
            "kms:Decrypt",
            KEY,
            "resource_policy",
            "implicitDeny",
            key_arn=KEY,
            key_policy_enables_iam=True,
        )
    )
    assert fix.kind == "add-key-policy-statement"
    assert fix.statement["Principal"] == {"AWS": ROLE}


def test_key_state_fixes():
    assert key_state_fix(KEY, "us-west-2", "Disabled").commands == (
        f"aws kms enable-key --key-id {KEY} --region us-west-2",
    )
    pending = key_state_fix(KEY, "us-west-2", "PendingDeletion")
    assert pending.commands[0] == (f"aws kms cancel-key-deletion --key-id {KEY} --region us-west-2")
    created = key_state_fix("", "us-west-2", "NotCreated", alias="alias/vault")
    assert created.kind == "create-key" and "alias/vault" in created.commands[1]
