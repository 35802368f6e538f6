"""An account's designated roles from iam:GetAccountAuthorizationDetails.

One paginated call (Filter Role + LocalManagedPolicy, up to 1,000 items a page) returns
every role with its tags, inline policy documents, attached managed policies and
permissions boundary, and every customer-managed policy with the documents of its
versions. It replaces ListRoles, ListRoleTags, GetRole, ListRolePolicies, GetRolePolicy,
ListAttachedRolePolicies, and GetPolicy + GetPolicyVersion of customer-managed policies:
about 13 calls for two designated roles become one. AWS-managed policies are not in the
answer with these filters (the AWSManagedPolicy filter would return all of them, over a
thousand); their documents come from the scan-wide cache, read once per scan.
https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountAuthorizationDetails.html
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from scanner.aws.roles import SERVICE_LINKED_PATH, is_designated, policy_document
from scanner.aws.session import AwsSessions
from scanner.config import Settings
from scanner.model import NamedPolicy, PolicyDocument, Role


class RoleReader(Protocol):
    """What reading roles needs of an account reader (scanner.aws.collect._AccountReader)."""

    sessions: AwsSessions
    settings: Settings
    iam: Any  # the account's boto3 IAM client
    customer_managed: dict[str, PolicyDocument | str]

    def managed_policy(self, arn: str) -> PolicyDocument: ...

    def _read_error(
        self, client: Any, operation: str, region: str, exc: ClientError
    ) -> Exception: ...


OPERATION = "GetAccountAuthorizationDetails"
FILTERS = ["Role", "LocalManagedPolicy"]
PAGE_SIZE = 1000  # the largest MaxItems IAM accepts


def default_documents(policies: list[dict[str, Any]]) -> dict[str, PolicyDocument | str]:
    """Customer-managed policy ARN -> document of its default version, as IAM answered it
    (URL-encoded JSON: decoded when a designated role uses it, see RAW_DOCUMENTS)."""
    documents: dict[str, PolicyDocument | str] = {}
    for policy in policies:
        for version in policy.get("PolicyVersionList", []):
            if version.get("IsDefaultVersion"):
                documents[policy["Arn"]] = version["Document"]
    return documents


def designated_roles(reader: RoleReader) -> list[Role]:
    """The account's designated roles, read with as few calls as IAM allows."""
    raw_roles: list[dict[str, Any]] = []
    policies: list[dict[str, Any]] = []
    try:
        pages = reader.sessions.throttle.pages(
            reader.iam, OPERATION, token=("Marker", "Marker"), Filter=FILTERS, MaxItems=PAGE_SIZE
        )
        for page in pages:
            raw_roles.extend(page.get("RoleDetailList", []))
            policies.extend(page.get("Policies", []))
    except ClientError as exc:
        raise reader._read_error(reader.iam, OPERATION, "", exc) from exc
    reader.customer_managed.update(default_documents(policies))
    roles = []
    for raw in raw_roles:
        name, path = raw["RoleName"], raw.get("Path", "/")
        if path.startswith(SERVICE_LINKED_PATH):
            continue
        tags = {tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])}
        if is_designated(name, path, tags, reader.settings.roles):
            roles.append(_role(reader, raw, tags))
    return roles


def _role(reader: RoleReader, raw: dict[str, Any], tags: dict[str, str]) -> Role:
    name = raw["RoleName"]
    role = Role(
        arn=raw["Arn"],
        name=name,
        path=raw.get("Path", "/"),
        tags=tags,
        role_id=raw.get("RoleId", ""),
    )
    for item in raw.get("RolePolicyList", []):
        document = policy_document(item["PolicyDocument"])
        role.inline_policies.append(NamedPolicy(f"inline:{name}/{item['PolicyName']}", document))
    for item in raw.get("AttachedManagedPolicies", []):
        arn = item["PolicyArn"]
        role.managed_policies.append(NamedPolicy(arn, reader.managed_policy(arn)))
    boundary = (raw.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    if boundary:
        role.permissions_boundary = NamedPolicy(boundary, reader.managed_policy(boundary))
    return role
