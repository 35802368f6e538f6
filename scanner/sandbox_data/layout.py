"""The sandbox organization: OUs, accounts, and for each account the one cause of Access
Denied planted in it with the verdict a person expects, written by hand from AWS's
documentation (never derived from vaultscan's own output)."""

from __future__ import annotations

from dataclasses import dataclass

# OU name -> parent OU name (None: directly under the root). Parents come first.
ORG_UNITS: dict[str, str | None] = {
    "Workloads": None,
    "Prod": "Workloads",
    "Legacy": "Workloads",
    "Sandbox": None,
    "Security": None,
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
class AccountPlan:
    name: str
    ou: str
    expectation: Expectation


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
