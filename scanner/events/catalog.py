"""Every CloudTrail management event that can change a verdict, and how far it reaches.

docs/events.md lists the same table with the AWS pages behind each row; a test keeps the
two equal. Where each event is delivered matters for the forwarding rules: IAM and
Organizations are global services whose events CloudTrail records, and EventBridge
delivers, in us-east-1; KMS and AWS Backup events arrive in the Region of the key or
vault.
- IAM: https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-integration.html
- Organizations: https://docs.aws.amazon.com/organizations/latest/userguide/orgs_cloudtrail-integration.html
- KMS: https://docs.aws.amazon.com/kms/latest/developerguide/understanding-kms-entries.html
- Backup: https://docs.aws.amazon.com/aws-backup/latest/devguide/logging-using-cloudtrail.html
- EventBridge: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-cloudtrail.html
"""

from __future__ import annotations

from enum import StrEnum


class Reach(StrEnum):
    """The smallest rescan that covers a change."""

    ROLE = "role"  # one role in one account: collect the account, drift for that role
    ACCOUNT = "account"  # one account: collect and decide it again
    KEY = "key"  # every account whose checks use the key (cross-account consumers too)
    ORG_POLICY = "org-policy"  # an SCP/RCP's content: re-decide from stored evidence
    ORG_TARGET = "org-target"  # attached/detached at a root, OU or account: re-decide below
    ORGANIZATION = "organization"  # a policy type enabled/disabled: a full scan


GLOBAL_REGION = "us-east-1"  # where IAM and Organizations events are delivered

# (eventSource, eventName) -> reach
CATALOG: dict[tuple[str, str], Reach] = {
    # IAM: the role, its inline and attached policies, boundary and tags
    ("iam.amazonaws.com", "CreateRole"): Reach.ROLE,
    ("iam.amazonaws.com", "DeleteRole"): Reach.ROLE,
    ("iam.amazonaws.com", "PutRolePolicy"): Reach.ROLE,
    ("iam.amazonaws.com", "DeleteRolePolicy"): Reach.ROLE,
    ("iam.amazonaws.com", "AttachRolePolicy"): Reach.ROLE,
    ("iam.amazonaws.com", "DetachRolePolicy"): Reach.ROLE,
    ("iam.amazonaws.com", "PutRolePermissionsBoundary"): Reach.ROLE,
    ("iam.amazonaws.com", "DeleteRolePermissionsBoundary"): Reach.ROLE,
    ("iam.amazonaws.com", "TagRole"): Reach.ROLE,
    ("iam.amazonaws.com", "UntagRole"): Reach.ROLE,
    ("iam.amazonaws.com", "UpdateAssumeRolePolicy"): Reach.ROLE,
    # a customer managed policy's default version: any role of the account may use it
    ("iam.amazonaws.com", "CreatePolicyVersion"): Reach.ACCOUNT,
    ("iam.amazonaws.com", "SetDefaultPolicyVersion"): Reach.ACCOUNT,
    # KMS: key policy, state, deletion, aliases, tags, grants
    ("kms.amazonaws.com", "PutKeyPolicy"): Reach.KEY,
    ("kms.amazonaws.com", "EnableKey"): Reach.KEY,
    ("kms.amazonaws.com", "DisableKey"): Reach.KEY,
    ("kms.amazonaws.com", "ScheduleKeyDeletion"): Reach.KEY,
    ("kms.amazonaws.com", "CancelKeyDeletion"): Reach.KEY,
    ("kms.amazonaws.com", "CreateAlias"): Reach.KEY,
    ("kms.amazonaws.com", "UpdateAlias"): Reach.KEY,
    ("kms.amazonaws.com", "DeleteAlias"): Reach.KEY,
    ("kms.amazonaws.com", "TagResource"): Reach.KEY,
    ("kms.amazonaws.com", "UntagResource"): Reach.KEY,
    ("kms.amazonaws.com", "RevokeGrant"): Reach.KEY,
    # Organizations: SCP/RCP content and attachments, policy types, account moves
    ("organizations.amazonaws.com", "UpdatePolicy"): Reach.ORG_POLICY,
    ("organizations.amazonaws.com", "AttachPolicy"): Reach.ORG_TARGET,
    ("organizations.amazonaws.com", "DetachPolicy"): Reach.ORG_TARGET,
    ("organizations.amazonaws.com", "EnablePolicyType"): Reach.ORGANIZATION,
    ("organizations.amazonaws.com", "DisablePolicyType"): Reach.ORGANIZATION,
    ("organizations.amazonaws.com", "MoveAccount"): Reach.ACCOUNT,
    # AWS Backup: a vault brings its key into the checks, or takes it out
    ("backup.amazonaws.com", "CreateBackupVault"): Reach.ACCOUNT,
    ("backup.amazonaws.com", "DeleteBackupVault"): Reach.ACCOUNT,
}

# Calls that look relevant but cannot change a verdict, with the reason (docs/events.md).
NO_EFFECT: dict[tuple[str, str], str] = {
    ("iam.amazonaws.com", "DeletePolicyVersion"): "the default version cannot be deleted",
    ("iam.amazonaws.com", "DeletePolicy"): "a policy must be detached before it is deleted",
    ("iam.amazonaws.com", "CreatePolicy"): "a new policy is attached by a later event",
    ("organizations.amazonaws.com", "CreatePolicy"): "a new policy is attached by a later event",
    ("organizations.amazonaws.com", "DeletePolicy"): "a policy must be detached first",
    ("kms.amazonaws.com", "CreateGrant"): "AWS Backup creates grants in every backup job",
    ("kms.amazonaws.com", "RetireGrant"): "AWS Backup retires its grants after every job",
}


def reach_of(source: str, name: str) -> Reach | None:
    """How far the event reaches, or None when it cannot change a verdict."""
    return CATALOG.get((source, name))


def event_pattern() -> dict[str, object]:
    """The EventBridge pattern matching exactly the catalogued calls (deploy/ uses it)."""
    sources = sorted({source for source, _ in CATALOG})
    return {
        "source": [f"aws.{source.split('.', 1)[0]}" for source in sources],
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": sources,
            "eventName": sorted({name for _, name in CATALOG}),
        },
    }
