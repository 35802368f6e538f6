"""The sandbox organization: OUs, accounts, and for each account the one cause of Access
Denied planted in it with the verdict a person expects, written by hand from AWS's
documentation (never derived from vaultscan's own output).

Besides one cause per account, the organization carries the patterns real organizations
use and that only a whole request context gets right: a data-perimeter RCP on every KMS
key (aws:PrincipalOrgID), a key statement gated on a principal tag, an SCP exception by
aws:PrincipalArn for roles at a path, a key policy gated on kms:CallerAccount, and a
central vault key in a security account used by three accounts' vaults.

A failing check on the central key is written `kms:CreateGrant ({central})`: the sandbox
fills in the key's label (its multi-Region key id, the same in every region)."""

from __future__ import annotations

from dataclasses import dataclass

# OU name -> parent OU name (None: directly under the root). Parents come first.
ORG_UNITS: dict[str, str | None] = {
    "Workloads": None,
    "Prod": "Workloads",
    "Legacy": "Workloads",
    "Sandbox": None,
    "Security": None,
    "Analytics": None,
}


@dataclass(frozen=True)
class Expectation:
    """What the scan must report for an account, in every region of the sandbox."""

    cause: str  # a short identifier, "healthy" for none
    summary: str  # the planted cause, in words
    failing_checks: tuple[str, ...] = ()  # checks that must fail; every other one passes
    layer: str | None = None  # deciding layer of the failing action checks
    decision: str | None = None  # the engine's decision for them
    fix_kind: str | None = None  # remediation["kind"]
    policy_contains: str | None = None  # a fragment of the deciding policy's name
    statement: str | None = None  # Sid of the deciding statement

    @property
    def healthy(self) -> bool:
        return not self.failing_checks


@dataclass(frozen=True)
class RolePlan:
    """A second designated role in an account, with its own expected verdict."""

    name: str
    path: str
    tags: tuple[tuple[str, str], ...]
    expectation: Expectation


@dataclass(frozen=True)
class AccountPlan:
    name: str
    ou: str
    expectation: Expectation  # of the account's BackupOperator role and its keys
    extra_roles: tuple[RolePlan, ...] = ()
    role_tags: tuple[tuple[str, str], ...] = ()  # extra tags of BackupOperator
    central_vault: bool = False  # a vault encrypted with the central key

    @property
    def healthy(self) -> bool:
        return self.expectation.healthy and all(r.expectation.healthy for r in self.extra_roles)


# the key actions a key policy or an RCP decides (kms:RetireGrant is authorized by the
# grant or IAM alone: "not effective in a key policy or resource control policy")
KEY_POLICY_ACTIONS = ("kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt", "kms:GenerateDataKey")
CENTRAL = "{central}"


def on_central(*actions: str) -> tuple[str, ...]:
    return tuple(f"{action} ({CENTRAL})" for action in actions)


HEALTHY = Expectation(cause="healthy", summary="nothing planted: every check passes")

ACCOUNT_PLANS: tuple[AccountPlan, ...] = (
    AccountPlan("prod-payments", "Prod", HEALTHY),
    AccountPlan("workloads-shared", "Workloads", HEALTHY),
    AccountPlan(
        "security-audit",
        "Security",
        Expectation(
            cause="healthy-with-boundary",
            summary="a permissions boundary that allows everything needed: passes",
        ),
    ),
    AccountPlan(
        "prod-orders",
        "Prod",
        Expectation(
            cause="identity-missing-mount-capsule",
            summary="the role has backup:*, which does not cover backup-storage:MountCapsule",
            failing_checks=("backup-storage:MountCapsule",),
            layer="identity",
            decision="implicitDeny",
            fix_kind="add-identity-statement",
        ),
    ),
    AccountPlan(
        "prod-search",
        "Prod",
        Expectation(
            cause="boundary-missing-create-grant",
            summary="the permissions boundary omits kms:CreateGrant",
            failing_checks=("kms:CreateGrant",),
            layer="permissions_boundary",
            decision="implicitDeny",
            fix_kind="add-boundary-statement",
            policy_contains="BackupBoundary",
        ),
    ),
    AccountPlan(
        "legacy-billing",
        "Legacy",
        Expectation(
            cause="scp-deny",
            summary="an SCP on OU Legacy denies backup:CreateBackupVault",
            failing_checks=("backup:CreateBackupVault",),
            layer="scp",
            decision="explicitDeny",
            fix_kind="edit-scp-deny",
            policy_contains="DenyBackupVaultCreation",
            statement="DenyVaults",
        ),
    ),
    AccountPlan(
        "sandbox-research",
        "Sandbox",
        Expectation(
            cause="scp-allow-list",
            summary="OU Sandbox replaced FullAWSAccess with an allow-list without backup-storage",
            failing_checks=("backup-storage:MountCapsule",),
            layer="scp",
            decision="implicitDeny",
            fix_kind="extend-scp-allow-list",
            policy_contains="SandboxAllowedServices",
        ),
    ),
    AccountPlan(
        "prod-media",
        "Prod",
        Expectation(
            cause="key-policy-without-root",
            summary="the vault key's policy lacks the default statement enabling IAM policies",
            # kms:RetireGrant is authorized by the grant, not the key policy
            failing_checks=(
                "kms:CreateGrant",
                "kms:DescribeKey",
                "kms:Decrypt",
                "kms:GenerateDataKey",
            ),
            layer="resource_policy",
            decision="implicitDeny",
            fix_kind="restore-key-policy-default",
            policy_contains="key policy",
        ),
    ),
    AccountPlan(
        "prod-ledger",
        "Prod",
        Expectation(
            cause="key-policy-deny",
            summary="the vault key's policy denies kms:CreateGrant to the backup role",
            failing_checks=("kms:CreateGrant",),
            layer="resource_policy",
            decision="explicitDeny",
            fix_kind="edit-key-policy-deny",
            policy_contains="key policy",
            statement="DenyGrantsForBackupOperator",
        ),
    ),
    AccountPlan(
        "security-logs",
        "Security",
        Expectation(
            cause="key-disabled",
            summary="the vault key is disabled",
            failing_checks=("kms:KeyState",),
            fix_kind="enable-key",
        ),
    ),
    AccountPlan(
        "security-archive",
        "Security",
        Expectation(
            cause="key-pending-deletion",
            summary="the vault key is scheduled for deletion",
            failing_checks=("kms:KeyState",),
            fix_kind="cancel-key-deletion",
        ),
    ),
    AccountPlan(
        "security-forensics",
        "Security",
        Expectation(
            cause="rcp-deny",
            summary="an RCP on the account denies kms:CreateGrant on its keys",
            failing_checks=("kms:CreateGrant",),
            layer="rcp",
            decision="explicitDeny",
            fix_kind="edit-rcp-deny",
            policy_contains="DenyKmsGrantCreation",
            statement="DenyGrantCreation",
        ),
    ),
    AccountPlan(
        "security-keys",
        "Security",
        Expectation(
            cause="central-key-owner",
            summary="owns the central vault key that three other accounts' vaults use: passes",
        ),
    ),
    AccountPlan(
        "prod-analytics",
        "Prod",
        Expectation(
            cause="central-key-allowed",
            summary=(
                "a vault on the central key of security-keys; its key policy allows the "
                "account through kms:CallerAccount: passes"
            ),
        ),
        central_vault=True,
    ),
    AccountPlan(
        "workloads-archive",
        "Workloads",
        Expectation(
            cause="central-key-not-in-key-policy",
            summary="a vault on the central key, whose key policy does not list this account",
            failing_checks=on_central(*KEY_POLICY_ACTIONS),
            layer="resource_policy",
            decision="implicitDeny",
            fix_kind="add-key-policy-statement",
            policy_contains="key policy",
        ),
        central_vault=True,
    ),
    AccountPlan(
        "analytics-reporting",
        "Analytics",
        Expectation(
            cause="central-key-blocked-by-owner-rcp",
            summary=(
                "a vault on the central key; the key owner's RCP lets only accounts under "
                "OU Workloads use its keys"
            ),
            failing_checks=on_central(*KEY_POLICY_ACTIONS),
            layer="rcp",
            decision="explicitDeny",
            fix_kind="edit-rcp-deny",
            policy_contains="CentralKeysForWorkloads",
            statement="OnlyWorkloadAccounts",
        ),
        central_vault=True,
    ),
    AccountPlan(
        "workloads-data",
        "Workloads",
        Expectation(
            cause="key-policy-principal-tag",
            summary="the vault key's policy allows only roles tagged team=backup: passes",
        ),
        role_tags=(("team", "backup"),),
        extra_roles=(
            RolePlan(
                "BackupOperatorAnalytics",
                "/backup/",
                (("team", "analytics"),),
                Expectation(
                    cause="key-policy-principal-tag-mismatch",
                    summary=(
                        "a second role tagged team=analytics, which the key policy does not allow"
                    ),
                    failing_checks=KEY_POLICY_ACTIONS,
                    layer="resource_policy",
                    decision="implicitDeny",
                    fix_kind="add-key-policy-statement",
                    policy_contains="key policy",
                ),
            ),
        ),
    ),
    AccountPlan(
        "platform-tools",
        "Workloads",
        Expectation(
            cause="scp-exception-by-principal-arn",
            summary=(
                "an SCP denies vault creation except to roles under /backup/ (aws:PrincipalArn): "
                "BackupOperator passes"
            ),
        ),
        extra_roles=(
            RolePlan(
                "BackupOperatorOps",
                "/ops/",
                (),
                Expectation(
                    cause="scp-exception-other-path",
                    summary="a second role at path /ops/, outside the SCP's exception",
                    failing_checks=("backup:CreateBackupVault",),
                    layer="scp",
                    decision="explicitDeny",
                    fix_kind="edit-scp-deny",
                    policy_contains="DenyVaultCreationOutsideBackupPath",
                    statement="DenyVaultsOutsideBackupPath",
                ),
            ),
        ),
    ),
    AccountPlan(
        "prod-catalog",
        "Prod",
        Expectation(
            cause="key-policy-caller-account",
            summary=(
                "a key policy without account statement: use through AWS Backup from this "
                "account only (kms:CallerAccount): passes"
            ),
        ),
    ),
    AccountPlan(
        "security-vault-default",
        "Security",
        Expectation(
            cause="aws-managed-key-under-rcp",
            # RCPs do not apply to AWS managed keys (AWS KMS Developer Guide, "Resource
            # control policies in AWS KMS"): every check passes
            summary="its only key is aws/backup; an RCP denying kms:CreateGrant does not apply",
        ),
    ),
)

# Drift: what `break_account` plants in a healthy account.
BROKEN_BY_DRIFT = Expectation(
    cause="drift-identity-deny",
    summary="an inline Deny on backup:CreateBackupVault was added to the role",
    failing_checks=("backup:CreateBackupVault",),
    layer="identity",
    decision="explicitDeny",
    fix_kind="edit-identity-deny",
    policy_contains="EmergencyFreeze",
    statement="FreezeVaultCreation",
)
