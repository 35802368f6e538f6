"""Service authorizers: each service's own rules about its resource policy, beside the
generic evaluation order in scanner.policy.evaluate.

The generic authorizer answers for any resource: a resource-based policy naming the
principal grants within the account, and access from another account needs it. KMS keys
(scanner.policy.kms) and IAM role trust policies (scanner.policy.trust) override the
parts where AWS documents different rules; `authorizer_for` picks the one for a request.
"""

from __future__ import annotations

from typing import Any

from scanner.policy.context import Request
from scanner.policy.vocabulary import Reason

# Services whose resources RCPs govern (AWS Organizations: Resource control policies,
# "List of AWS services that support RCPs"). Other services ignore RCPs.
RCP_SERVICES = frozenset(
    {"s3", "sts", "kms", "sqs", "secretsmanager", "cognito-idp", "logs", "dynamodb", "ecr", "aoss"}
)


class ResourceAuthorizer:
    """The generic rules (IAM: Policy evaluation logic; Cross-account policy evaluation
    logic)."""

    name = "generic"
    policy_word = "resource policy"  # default name of the resource's policy
    title = "Resource policy"
    # IAM policies count only when the resource's policy allows the principal's account
    requires_account_trust = False
    untrusted_reason = Reason.NO_ACCOUNT_TRUST
    not_consulted_reason: Reason | None = None

    def rcp_exemption(self, request: Request) -> Reason | None:
        """Why RCPs do not apply to this request, or None when they do."""
        if request.service not in RCP_SERVICES:
            return Reason.RCP_SERVICE_UNSUPPORTED
        return None

    def consults_resource_policy(self, request: Request) -> bool:
        return True

    def missing_policy(self, request: Request) -> Reason | None:
        """The resource policy layer's reason when the scenario gives no policy (None:
        no such layer)."""
        return Reason.NO_RESOURCE_POLICY if request.cross_account else None

    def trust_account(self, request: Request) -> str:
        """The account whose trust the policy must state for IAM policies to count."""
        return request.principal.account

    def prepare(self, document: dict[str, Any]) -> dict[str, Any]:
        """The policy document as the engine compiles it."""
        return document


GENERIC = ResourceAuthorizer()
