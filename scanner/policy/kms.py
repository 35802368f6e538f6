"""AWS KMS's own authorization rules, applied on top of the generic evaluation
(AWS KMS: Key policies, "Default key policy"; Retiring and revoking grants; Resource
control policies in AWS KMS).

- For a KMS key, IAM policies of the key's account only count when the key policy
  allows that account (a statement naming `arn:aws:iam::ACCOUNT:root` or the account
  id); without it IAM allows are ineffective, IAM denies still deny.
- A key policy statement naming the principal itself grants access on its own.
- kms:RetireGrant is authorized by the grant (retiring/grantee principal, creating
  account) or by an IAM policy; "the kms:RetireGrant permission is not effective in a
  key policy or resource control policy", so neither grants nor withholds it.
- "Resource control policies in your organization do not apply to AWS managed keys"
  (AWS KMS Developer Guide: Resource control policies in AWS KMS).
"""

from __future__ import annotations

from scanner.policy.arn import split_arn
from scanner.policy.authorizer import ResourceAuthorizer
from scanner.policy.context import Request
from scanner.policy.vocabulary import KeyManager, Reason

RETIRE_GRANT = "kms:retiregrant"


def is_key_request(action: str, resource: str) -> bool:
    """A request on a KMS key, governed by its key policy."""
    parts = split_arn(resource)
    if parts is None:
        return False
    return parts[2] == "kms" and parts[5].startswith("key/")


class KmsKeyAuthorizer(ResourceAuthorizer):
    name = "kms-key"
    policy_word = "key policy"
    title = "Key policy"
    requires_account_trust = True
    untrusted_reason = Reason.NO_ACCOUNT_TRUST
    not_consulted_reason = Reason.KEY_POLICY_RETIRE_GRANT

    def rcp_exemption(self, request: Request) -> Reason | None:
        if request.key_manager == KeyManager.AWS:
            return Reason.RCP_AWS_MANAGED_KEY
        if request.action == RETIRE_GRANT:
            return Reason.RCP_RETIRE_GRANT
        return super().rcp_exemption(request)

    def consults_resource_policy(self, request: Request) -> bool:
        return request.action != RETIRE_GRANT

    def missing_policy(self, request: Request) -> Reason | None:
        return Reason.NO_KEY_POLICY if self.consults_resource_policy(request) else None

    def trust_account(self, request: Request) -> str:
        return request.resource_account


KMS_KEY = KmsKeyAuthorizer()
