"""Policy documents of the sandbox organization, healthy and broken, modelled on AWS's
"Access Denied when creating a backup vault" troubleshooting guidance."""

from __future__ import annotations

from typing import Any

from scanner.profiles import BUILTIN_DIR, read_profile_file

Document = dict[str, Any]

VAULT_PROFILE = "backup-vault-create.yaml"


def vault_key_actions() -> list[str]:
    """The key actions the built-in vault profile requires (read from the profile, the
    one place they are listed)."""
    profile = read_profile_file(BUILTIN_DIR / VAULT_PROFILE)
    return [requirement.action for requirement in profile.requirements if requirement.needs_key]


def _doc(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def read_role_trust(management_account_id: str) -> Document:
    return _doc(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{management_account_id}:root"},
            "Action": "sts:AssumeRole",
        }
    )


def read_role_permissions() -> Document:
    """What the scanner reads in a member account (mirrors deploy/'s read role)."""
    return _doc(
        {
            "Sid": "ReadRolesKeysAndVaults",
            "Effect": "Allow",
            "Action": [
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:GetPolicy",
                "iam:GetPolicyVersion",
                "iam:ListRoles",
                "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies",
                "iam:ListRoleTags",
                "iam:SimulatePrincipalPolicy",
                "kms:DescribeKey",
                "kms:GetKeyPolicy",
                "kms:ListAliases",
                "kms:ListGrants",
                "kms:ListResourceTags",
                "backup:ListBackupVaults",
                "backup:DescribeBackupVault",
            ],
            "Resource": "*",
        }
    )


def backup_role_trust(management_account_id: str) -> Document:
    return _doc(
        {
            "Effect": "Allow",
            "Principal": {
                "Service": "backup.amazonaws.com",
                "AWS": f"arn:aws:iam::{management_account_id}:root",
            },
            "Action": "sts:AssumeRole",
        }
    )


def vault_backup_statements(account_id: str, *, wildcard_backup: bool = False) -> Document:
    """Inline policy of the backup role: AWS's example policy with this account's ARNs.

    `wildcard_backup` plants the classic mistake: `backup:*` looks complete but does not
    cover the separate `backup-storage` service prefix.
    """
    if wildcard_backup:
        return _doc(
            {"Sid": "BackupAdmin", "Effect": "Allow", "Action": "backup:*", "Resource": "*"}
        )
    return _doc(
        {
            "Sid": "CreateVaults",
            "Effect": "Allow",
            "Action": ["backup:CreateBackupVault"],
            "Resource": f"arn:aws:backup:*:{account_id}:backup-vault:*",
        },
        {
            "Sid": "MountCapsule",
            "Effect": "Allow",
            "Action": ["backup-storage:MountCapsule"],
            "Resource": "*",
        },
    )


def vault_key_access(account_id: str, central_account: str | None = None) -> Document:
    """Customer managed policy granting the vault-key actions on this account's keys (and
    on the security account's central keys: cross-account use needs the role's own
    allow as well as the key policy's)."""
    statements = [
        {
            "Sid": "UseVaultKeys",
            "Effect": "Allow",
            "Action": vault_key_actions(),
            "Resource": f"arn:aws:kms:*:{account_id}:key/*",
        }
    ]
    if central_account:
        statements.append(
            {
                "Sid": "UseCentralVaultKeys",
                "Effect": "Allow",
                "Action": vault_key_actions(),
                "Resource": f"arn:aws:kms:*:{central_account}:key/*",
            }
        )
    return _doc(*statements)


def full_boundary() -> Document:
    return _doc(
        {
            "Sid": "BackupWorkloads",
            "Effect": "Allow",
            "Action": ["backup:*", "backup-storage:*", "kms:*", "iam:PassRole"],
            "Resource": "*",
        }
    )


def boundary_without_create_grant() -> Document:
    return _doc(
        {
            "Sid": "BackupWorkloads",
            "Effect": "Allow",
            "Action": [
                "backup:*",
                "backup-storage:*",
                "kms:DescribeKey",
                "kms:RetireGrant",
                "kms:Decrypt",
                "kms:GenerateDataKey*",
                "iam:PassRole",
            ],
            "Resource": "*",
        }
    )


def default_key_statement(account_id: str) -> Document:
    return {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def key_admin_statement(account_id: str) -> Document:
    return {
        "Sid": "Allow access for Key Administrators",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:role/KeyAdmin"},
        "Action": [
            "kms:Create*",
            "kms:Describe*",
            "kms:Enable*",
            "kms:List*",
            "kms:Put*",
            "kms:Update*",
            "kms:Revoke*",
            "kms:Disable*",
            "kms:Get*",
            "kms:Delete*",
            "kms:ScheduleKeyDeletion",
            "kms:CancelKeyDeletion",
        ],
        "Resource": "*",
    }


def default_key_policy(account_id: str) -> Document:
    return _doc(default_key_statement(account_id), key_admin_statement(account_id))


def aws_backup_key_policy(account_id: str, region: str) -> Document:
    """The policy AWS gives its managed key aws/backup ("auto-backup-1"): use through AWS
    Backup for every principal of the account, key metadata for the account."""
    document = _doc(
        {
            "Sid": "Allow access through Backup for all principals in the account that are "
            "authorized to use Backup Storage",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": f"backup.{region}.amazonaws.com",
                    "kms:CallerAccount": account_id,
                }
            },
        },
        {
            "Sid": "Allow direct access to key metadata to the account",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
            "Resource": "*",
        },
    )
    return {"Id": "auto-backup-1", **document}


def key_policy_without_root(account_id: str) -> Document:
    """Only the key administrators: IAM policies on the key become ineffective."""
    return _doc(key_admin_statement(account_id))


def key_policy_denying_grants(account_id: str, role_arn: str) -> Document:
    return _doc(
        default_key_statement(account_id),
        key_admin_statement(account_id),
        {
            "Sid": "DenyGrantsForBackupOperator",
            "Effect": "Deny",
            "Principal": {"AWS": role_arn},
            "Action": "kms:CreateGrant",
            "Resource": "*",
        },
    )


def scp_deny_vault_creation() -> Document:
    return _doc(
        {
            "Sid": "DenyVaults",
            "Effect": "Deny",
            "Action": ["backup:CreateBackupVault", "backup:DeleteBackupVault"],
            "Resource": "*",
        }
    )


def scp_allow_list_without_backup_storage() -> Document:
    """An allow-list SCP that replaces FullAWSAccess and forgets `backup-storage`."""
    return _doc(
        {
            "Sid": "AllowedServices",
            "Effect": "Allow",
            "Action": [
                "backup:*",
                "kms:*",
                "iam:*",
                "sts:*",
                "s3:*",
                "ec2:*",
                "cloudwatch:*",
                "logs:*",
            ],
            "Resource": "*",
        }
    )


def rcp_deny_grant_creation() -> Document:
    return _doc(
        {
            "Sid": "DenyGrantCreation",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:CreateGrant",
            "Resource": "*",
        }
    )


def emergency_deny() -> Document:
    """What `break_account` attaches to a healthy role to simulate drift."""
    return _doc(
        {
            "Sid": "FreezeVaultCreation",
            "Effect": "Deny",
            "Action": "backup:CreateBackupVault",
            "Resource": "*",
        }
    )


# --- patterns of real organizations ------------------------------------------------------


def rcp_key_perimeter(organization_id: str) -> Document:
    """The data-perimeter RCP AWS publishes for KMS: only identities of this organization
    (or AWS services) may use its keys (AWS Organizations: RCP examples; data perimeter
    policy examples, "EnforceOrgIdentities")."""
    return _doc(
        {
            "Sid": "EnforceOrgIdentities",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {
                "StringNotEqualsIfExists": {"aws:PrincipalOrgID": organization_id},
                "BoolIfExists": {"aws:PrincipalIsAWSService": "false"},
            },
        }
    )


def rcp_central_keys_for_workloads(workloads_path: str, owner_account: str) -> Document:
    """On the key owner's account: only principals under OU Workloads (and the owner
    itself) may use its keys. aws:PrincipalOrgPaths is multivalued, hence the set
    qualifier (IAM: AWS global condition context keys, aws:PrincipalOrgPaths)."""
    return _doc(
        {
            "Sid": "OnlyWorkloadAccounts",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {
                "ForAllValues:StringNotLike": {"aws:PrincipalOrgPaths": [f"{workloads_path}*"]},
                "StringNotEqualsIfExists": {"aws:PrincipalAccount": owner_account},
                "BoolIfExists": {"aws:PrincipalIsAWSService": "false"},
            },
        }
    )


def central_key_policy(owner_account: str, caller_accounts: list[str]) -> Document:
    """The central vault key: its owner administers it; the listed accounts may use it
    through AWS Backup (kms:CallerAccount and kms:ViaService, as AWS managed keys' own
    policies do: AWS KMS condition keys)."""
    return _doc(
        default_key_statement(owner_account),
        {
            "Sid": "AllowBackupFromWorkloadAccounts",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": vault_key_actions(),
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": sorted(caller_accounts)},
                "StringLike": {"kms:ViaService": "backup.*.amazonaws.com"},
            },
        },
    )


def key_policy_principal_tag(account_id: str) -> Document:
    """IAM policies of the account count for this key only for roles tagged team=backup
    (attribute-based access control in a key policy)."""
    return _doc(
        key_admin_statement(account_id),
        {
            "Sid": "AllowBackupTeamRoles",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/team": "backup"}},
        },
    )


def key_policy_caller_account(account_id: str) -> Document:
    """No account statement: the key may be used only through AWS Backup, by principals
    of this account (the shape of an AWS managed key's policy)."""
    return _doc(
        key_admin_statement(account_id),
        {
            "Sid": "AllowBackupInThisAccount",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": vault_key_actions(),
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": account_id},
                "StringLike": {"kms:ViaService": "backup.*.amazonaws.com"},
            },
        },
    )


def scp_deny_vault_creation_outside_backup_path() -> Document:
    """Only roles under the /backup/ path may create vaults: an exception by
    aws:PrincipalArn, whose value is the role ARN with its path."""
    return _doc(
        {
            "Sid": "DenyVaultsOutsideBackupPath",
            "Effect": "Deny",
            "Action": "backup:CreateBackupVault",
            "Resource": "*",
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/backup/*"}},
        }
    )
