"""The sentence a person reads for each `Reason`: rendering only, never parsed back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scanner.policy.vocabulary import Reason

_FIXED = {
    Reason.NO_ALLOW: "no statement allows this request",
    Reason.NO_PERMISSION_NEEDED: (
        "not consulted: this action needs no permission and cannot be denied"
    ),
    Reason.SERVICE_LINKED_ROLE: "not applied: SCPs do not affect service-linked roles",
    Reason.RCP_RETIRE_GRANT: (
        "not consulted: the kms:RetireGrant permission is not effective in resource "
        "control policies"
    ),
    Reason.RCP_AWS_MANAGED_KEY: (
        "not applied: resource control policies do not apply to AWS managed keys "
        '(AWS KMS Developer Guide, "Resource control policies in AWS KMS")'
    ),
    Reason.KEY_POLICY_RETIRE_GRANT: (
        "not consulted: kms:RetireGrant is authorized by the grant itself or by IAM "
        "policies; a key policy neither grants nor withholds it"
    ),
    Reason.NO_KEY_POLICY: (
        "no key policy given: every KMS key has one, and IAM policies only count when it "
        "allows the key's account"
    ),
    Reason.NO_TRUST_POLICY: (
        "no trust policy given: a role's trust policy must allow the principal (or its "
        "account) before IAM policies can grant assuming it"
    ),
    Reason.NO_RESOURCE_POLICY: (
        "no resource policy given: access from another account needs the resource's "
        "policy to allow it"
    ),
}


def layer_note(
    reason: Reason | None,
    subject: str | None,
    levels: Sequence[Any],  # LevelResult (scanner.policy.result imports this module)
    trust: Any,  # AccountTrust | None
) -> str | None:
    if reason is None:
        return None
    fixed = _FIXED.get(reason)
    if fixed is not None:
        return fixed
    if reason is Reason.NO_ALLOW_AT_LEVEL:
        failing = [level.index for level in levels if level.decision != "allowed"]
        where = ", ".join(level_name(number, len(levels)) for number in failing)
        return f"no statement allows this request at {where}"
    if reason is Reason.RCP_SERVICE_UNSUPPORTED:
        return f"RCPs do not apply to {subject} actions"
    account = trust.account if trust is not None else subject
    if reason is Reason.NO_ACCOUNT_TRUST:
        return (
            f"the key policy has no statement allowing the account (arn:aws:iam::{account}:root) "
            "for this action, so IAM policies cannot grant it"
        )
    if reason is Reason.NO_ROLE_TRUST:
        return (
            "the trust policy has no statement allowing the principal or its account "
            f"(arn:aws:iam::{account}:root), so IAM policies cannot grant assuming the role"
        )
    if reason is Reason.ACCOUNT_TRUST_CONDITIONS_UNMET:
        return _conditions_unmet(subject or "policy", account, trust)
    return str(reason)


def _conditions_unmet(policy: str, account: str | None, trust: Any) -> str:
    unmet = trust.unmet if trust is not None else ()
    parts = []
    for miss in unmet:
        ref = miss.statement
        label = f'"{ref.sid}"' if ref.sid else f"#{ref.index}"
        condition = f" ({miss.condition.label})" if miss.condition else ""
        parts.append(f"statement {label}{condition}")
    which = "; ".join(parts) or "its conditions"
    return (
        f"the {policy} allows the account (arn:aws:iam::{account}:root) for this action only "
        f"under conditions this request does not meet: {which}; so IAM policies cannot grant it"
    )


def level_name(number: int, count: int) -> str:
    if number == 0:
        return "level 0 (root)"
    if number == count - 1:
        return f"level {number} (account)"
    return f"level {number}"
