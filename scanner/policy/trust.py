"""IAM role trust policies: the resource-based policy of a role, consulted when a
principal asks AWS STS to assume it.

"For most resources, you only need an explicit allow for the principal in either an
identity-based policy or a resource-based policy to grant access. IAM role trust policies
and KMS key policies are exceptions to this logic, because they must explicitly allow
access for principals." (IAM: How AWS enforcement code logic evaluates requests to allow
or deny access.) So, as for a KMS key, a trust policy statement naming the principal
grants on its own, one naming the principal's account delegates to its IAM policies, and
without either an allow in IAM policies grants nothing.

A trust policy is attached to the role it governs, and AWS's trust policies name no
`Resource`: a statement without `Resource`/`NotResource` applies to the role.
"""

from __future__ import annotations

from typing import Any

from scanner.policy.arn import split_arn
from scanner.policy.authorizer import ResourceAuthorizer
from scanner.policy.context import Request
from scanner.policy.vocabulary import Reason

# The AWS STS actions authorized by the trust policy of the role in the request.
TRUST_ACTIONS = frozenset(
    {
        "sts:assumerole",
        "sts:assumerolewithsaml",
        "sts:assumerolewithwebidentity",
        "sts:setsourceidentity",
        "sts:tagsession",
    }
)


def is_trust_request(action: str, resource: str) -> bool:
    """A request to assume an IAM role, governed by the role's trust policy."""
    if action.lower() not in TRUST_ACTIONS:
        return False
    parts = split_arn(resource)
    return parts is not None and parts[2] == "iam" and parts[5].startswith("role/")


def trust_policy_document(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with `"Resource": "*"` on the statements that name no resource, since
    a trust policy statement applies to the role the policy is attached to."""
    statements = document.get("Statement")
    listed = statements if isinstance(statements, list) else [statements]
    if not any(_names_no_resource(s) for s in listed):
        return document
    fixed = [{**s, "Resource": "*"} if _names_no_resource(s) else s for s in listed]
    return {**document, "Statement": fixed if isinstance(statements, list) else fixed[0]}


def _names_no_resource(statement: Any) -> bool:
    return (
        isinstance(statement, dict)
        and bool(statement)
        and "Resource" not in statement
        and "NotResource" not in statement
    )


class RoleTrustAuthorizer(ResourceAuthorizer):
    name = "role-trust"
    policy_word = "trust policy"
    title = "Trust policy"
    requires_account_trust = True
    untrusted_reason = Reason.NO_ROLE_TRUST

    def missing_policy(self, request: Request) -> Reason | None:
        return Reason.NO_TRUST_POLICY

    def prepare(self, document: dict[str, Any]) -> dict[str, Any]:
        return trust_policy_document(document)


ROLE_TRUST = RoleTrustAuthorizer()
