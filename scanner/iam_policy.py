"""The IAM policies vaultscan needs, built from the one list of actions it calls.

`scanner.aws.permissions` names every AWS action the scanner performs; the CloudFormation
templates under deploy/, `vaultscan iam-policy` and the IAM coverage test all derive from
it, so a new API call cannot ship without the permission that lets it run.
"""

from __future__ import annotations

import json
from typing import Literal

import yaml

from scanner.aws.permissions import (
    EVENT_QUEUE_ACTIONS,
    MEMBER_READ_ACTIONS,
    OCSF_S3_ACTIONS,
    ORG_READ_ACTIONS,
    SCANNER_ACTIONS,
    SECURITYHUB_ACTIONS,
    SNS_ACTIONS,
)
from scanner.config import Settings
from scanner.model import PolicyDocument

RoleKind = Literal["member", "org", "scanner"]
OutputFormat = Literal["json", "yaml"]
ROLE_KINDS: tuple[RoleKind, ...] = ("member", "org", "scanner")

MEMBER_SID = "VaultscanMemberRead"
ORG_SID = "VaultscanOrganizationRead"


def _policy(*statements: dict) -> PolicyDocument:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def member_read_policy() -> PolicyDocument:
    """The read role in every member account: exactly the actions the collector calls.

    Resource "*": these are List/Get/Describe reads over every role and key of the account,
    and iam:SimulatePrincipalPolicy must reach any designated role.
    """
    actions = sorted(set(MEMBER_READ_ACTIONS))
    return _policy({"Sid": MEMBER_SID, "Effect": "Allow", "Action": actions, "Resource": "*"})


def org_read_policy() -> PolicyDocument:
    """The management-account (or delegated administrator) role for Organizations reads."""
    actions = sorted(set(ORG_READ_ACTIONS))
    return _policy({"Sid": ORG_SID, "Effect": "Allow", "Action": actions, "Resource": "*"})


def member_role_arn_pattern(settings: Settings) -> str:
    """The member read role in any account, as the scanner's own policy must name it."""
    partition = settings.organization.partition
    member = settings.member
    return f"arn:{partition}:iam::*:role{member.read_role_path}{member.read_role_name}"


def scanner_policy(settings: Settings) -> PolicyDocument:
    """The scanner's own role (IRSA): assume the member read roles and the org reader.

    Without `organization.role_arn` the scanner reads Organizations with its own
    credentials, so the org actions belong to its own policy instead.
    """
    actions = sorted(set(SCANNER_ACTIONS))
    statements: list[dict] = [
        {
            "Sid": "AssumeMemberReadRoles",
            "Effect": "Allow",
            "Action": actions,
            "Resource": member_role_arn_pattern(settings),
        }
    ]
    role_arn = settings.organization.role_arn
    if role_arn:
        statements.append(
            {
                "Sid": "AssumeOrganizationReader",
                "Effect": "Allow",
                "Action": actions,
                "Resource": role_arn,
            }
        )
    else:
        statements.extend(org_read_policy()["Statement"])
    if settings.events.queue_url:
        statements.append(
            {
                "Sid": "ConsumeEventQueue",
                "Effect": "Allow",
                "Action": sorted(set(EVENT_QUEUE_ACTIONS)),
                "Resource": queue_arn(settings.events.queue_url, settings.organization.partition),
            }
        )
    statements.extend(outlet_statements(settings))
    return _policy(*statements)


def queue_arn(queue_url: str, partition: str = "aws") -> str:
    """The queue's ARN from its URL, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME."""
    host, _, path = queue_url.split("://", 1)[-1].partition("/")
    parts = host.split(".")
    region = parts[1] if len(parts) >= 3 and parts[0] == "sqs" else "*"
    account, _, name = path.strip("/").partition("/")
    return f"arn:{partition}:sqs:{region}:{account or '*'}:{name or '*'}"


def outlet_statements(settings: Settings) -> list[dict]:
    """What the enabled outlets call with the scanner's own identity; Slack and webhook
    outlets call no AWS API. Resources per the Service Authorization Reference: Security
    Hub's BatchImportFindings acts on the product, GetFindings on the hub
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecurityhub.html)."""
    partition = settings.organization.partition
    statements: list[dict] = []
    if settings.securityhub.enabled:
        region = settings.securityhub.region or settings.organization.region
        statements.append(
            {
                "Sid": "ImportFindingsIntoSecurityHub",
                "Effect": "Allow",
                "Action": sorted(set(SECURITYHUB_ACTIONS)),
                "Resource": [
                    f"arn:{partition}:securityhub:{region}:*:product/*/default",
                    f"arn:{partition}:securityhub:{region}:*:hub/default",
                ],
            }
        )
    if settings.ocsf.enabled and settings.ocsf.s3_uri:
        location = settings.ocsf.s3_uri.removeprefix("s3://")
        bucket, _, prefix = location.partition("/")
        statements.append(
            {
                "Sid": "WriteOcsfEvents",
                "Effect": "Allow",
                "Action": sorted(set(OCSF_S3_ACTIONS)),
                "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*",
            }
        )
    if settings.notifications.sns.topic_arn:
        statements.append(
            {
                "Sid": "PublishDriftNotifications",
                "Effect": "Allow",
                "Action": sorted(set(SNS_ACTIONS)),
                "Resource": settings.notifications.sns.topic_arn,
            }
        )
    return statements


def policy_for(kind: RoleKind, settings: Settings) -> PolicyDocument:
    if kind == "member":
        return member_read_policy()
    if kind == "org":
        return org_read_policy()
    return scanner_policy(settings)


def render(document: PolicyDocument, fmt: OutputFormat) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False)
