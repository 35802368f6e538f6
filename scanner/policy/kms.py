"""AWS KMS's own authorization rules, applied on top of the generic evaluation
(AWS KMS: Key policies, "Default key policy"; Retiring and revoking grants).

- For a KMS key, IAM policies of the key's account only count when the key policy
  allows that account (a statement naming `arn:aws:iam::ACCOUNT:root` or the account
  id); without it IAM allows are ineffective, IAM denies still deny.
- A key policy statement naming the principal itself grants access on its own.
- kms:RetireGrant is authorized by the grant (retiring/grantee principal, creating
  account) or by an IAM policy; "the kms:RetireGrant permission is not effective in a
  key policy or resource control policy", so neither grants nor withholds it.
"""

from __future__ import annotations

from scanner.policy.arn import split_arn

RETIRE_GRANT = "kms:retiregrant"
RETIRE_GRANT_NOTE = (
    "not consulted: kms:RetireGrant is authorized by the grant itself or by IAM "
    "policies; a key policy neither grants nor withholds it"
)
NO_KEY_POLICY_NOTE = (
    "no key policy given: every KMS key has one, and IAM policies only count when it "
    "allows the key's account"
)
NO_ACCOUNT_TRUST_NOTE = (
    "the key policy has no statement allowing the account (arn:aws:iam::{account}:root) "
    "for this action, so IAM policies cannot grant it"
)


def is_key_request(action: str, resource: str) -> bool:
    """A request on a KMS key, governed by its key policy."""
    parts = split_arn(resource)
    if parts is None:
        return False
    return parts[2] == "kms" and parts[5].startswith("key/")


RCP_RETIRE_GRANT_NOTE = (
    "not consulted: the kms:RetireGrant permission is not effective in resource control policies"
)


def key_policy_consulted(action: str) -> bool:
    return action != RETIRE_GRANT


def rcps_consulted(action: str) -> bool:
    return action != RETIRE_GRANT
