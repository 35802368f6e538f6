"""The IAM actions the scanner performs: the single source of truth for the read-role
templates (deploy/) and `vaultscan iam-policy`. A test runs a full collection and a full
discovery under moto and checks that every call made is listed here, and the reverse.
Why each action is needed: docs/read-role.md."""

from __future__ import annotations

# Called in every member account through the read role (member.read_role_name).
MEMBER_READ_ACTIONS: tuple[str, ...] = (
    "iam:GetAccountAuthorizationDetails",
    "iam:ListRoles",
    "iam:ListRoleTags",
    "iam:GetRole",
    "iam:ListRolePolicies",
    "iam:GetRolePolicy",
    "iam:ListAttachedRolePolicies",
    "iam:GetPolicy",
    "iam:GetPolicyVersion",
    "iam:SimulatePrincipalPolicy",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:ListGrants",
    "kms:ListResourceTags",
    "backup:ListBackupVaults",
)

# Called against AWS Organizations (management account or delegated administrator,
# through organization.role_arn when set).
ORG_READ_ACTIONS: tuple[str, ...] = (
    "organizations:DescribeOrganization",
    "organizations:ListRoots",
    "organizations:ListOrganizationalUnitsForParent",
    "organizations:ListAccountsForParent",
    "organizations:ListPolicies",
    "organizations:ListTargetsForPolicy",
    "organizations:ListPoliciesForTarget",
    "organizations:DescribePolicy",
    # only with report.owner_tag: the owner tag of each scanned account
    "organizations:ListTagsForResource",
)

# Made by the scanner's own identity to enter member accounts and the Organizations role.
SCANNER_ACTIONS: tuple[str, ...] = ("sts:AssumeRole",)

# Made by the scanner's own identity on the event queue (events.queue_url), if configured:
# receive, delete after the verdicts are stored, and read the redrive policy to say when
# a failing message's last try has come (scanner.aws.queue).
EVENT_QUEUE_ACTIONS: tuple[str, ...] = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
)

# Made by the scanner's own identity when an outlet is enabled (docs/integrations.md).
# The account id findings are imported under comes from sts:GetCallerIdentity, which needs
# no permission (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html).
# securityhub.enabled: import, update and resolve findings (GetFindings lists ours).
SECURITYHUB_ACTIONS: tuple[str, ...] = (
    "securityhub:BatchImportFindings",
    "securityhub:GetFindings",
)
# ocsf.s3_uri: one object of OCSF events per scan.
OCSF_S3_ACTIONS: tuple[str, ...] = ("s3:PutObject",)
# notifications.sns.topic_arn: one message per scan that changed something.
SNS_ACTIONS: tuple[str, ...] = ("sns:Publish",)
