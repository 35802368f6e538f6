"""The one sentence a verdict says: what allows, or which policy denies and why."""

from __future__ import annotations

from scanner.decide.culprit import Culprit
from scanner.model import LAYER_WORDS, KeyManager, KmsKey, Role
from scanner.policy import AccountTrust, Decision, Layer
from scanner.policy.arn import arn_account


def allowed_message(role: Role, action: str, resource: str) -> str:
    target = "" if resource == "*" else f" on {resource}"
    return f"Role {role.name} may perform {action}{target}."


def simulator_deny_message(role: Role, action: str, simulated: str | None) -> str:
    return (
        f"AWS's IAM policy simulator denies {action} to role {role.name} ({simulated}) "
        "although vaultscan's engine allows it."
    )


def disagreement_suffix(source: str, simulated: str | None, iam_side: str) -> str:
    return (
        f" The simulator ({source}) says {simulated}; vaultscan's engine says {iam_side} "
        "over the same layers (identity policies, permissions boundary, SCPs)."
    )


def missing_context_suffix(simulated: str | None, missing: tuple[str, ...]) -> str:
    return (
        f" AWS's simulator says {simulated}, resting on {', '.join(missing)}, which "
        "vaultscan did not send (it cannot know them); not counted against the role."
    )


def absent_keys_suffix(keys: tuple[str, ...]) -> str:
    return (
        f" This verdict assumes {', '.join(keys)} absent or as documented in docs/context.md:"
        " vaultscan cannot know their value before the call."
    )


def unmet_trust_conditions(trust: AccountTrust | None) -> tuple[str, ...]:
    """The key policy's account statements this request does not meet, as
    `statement "Sid" (StringEquals kms:ViaService)`: the same words the engine's note,
    the message and the fix use."""
    if trust is None or trust.trusted:
        return ()
    out = []
    for miss in trust.unmet:
        ref = miss.statement
        label = f'"{ref.sid}"' if ref.sid else f"#{ref.index}"
        condition = f" ({miss.condition.label})" if miss.condition else ""
        out.append(f"statement {label}{condition}")
    return tuple(out)


def failure_message(
    *,
    action: str,
    role: Role,
    layer: str | None,
    decision: str,
    culprit: Culprit,
    resource: str,
    trust: AccountTrust | None,
    key: KmsKey | None,
) -> str:
    # a key policy is named after its key: no need to repeat the key ARN
    target = "" if resource == "*" or layer == Layer.RESOURCE_POLICY else f" on {resource}"
    if decision == Decision.EXPLICIT_DENY:
        return _explicit_deny(action, role, layer, culprit, target)
    if layer in (Layer.SCP, Layer.RCP):
        return _org_gap(action, layer, culprit, target)
    if layer == Layer.PERMISSIONS_BOUNDARY:
        return (
            f"The permissions boundary {culprit.policy} of role {role.name} does not allow "
            f"{action}{target}."
        )
    if layer == Layer.RESOURCE_POLICY:
        return _key_policy_gap(action, role, culprit, trust) + _aws_managed(key)
    return f"No identity policy of role {role.name} allows {action}{target}."


def _explicit_deny(
    action: str, role: Role, layer: str | None, culprit: Culprit, target: str
) -> str:
    where = f" at {culprit.level}" if culprit.level else ""
    words = LAYER_WORDS.get(layer or "", "policy")
    policy = culprit.policy or "(unnamed policy)"
    if layer == Layer.RESOURCE_POLICY:
        subject = policy[0].upper() + policy[1:]
    else:
        subject = f"{words[0].upper() + words[1:]} {policy}{where}"
    return (
        f"{subject}, statement {culprit.statement_label}, denies {action}{target} "
        f"to role {role.name}."
    )


def _org_gap(action: str, layer: str, culprit: Culprit, target: str) -> str:
    words = LAYER_WORDS[layer]
    if culprit.policy:
        return (
            f"No {words} at {culprit.level} allows {action}{target} (attached there: "
            f"{culprit.policy}); every level of the organization path must allow it."
        )
    return f"No {words} is attached at {culprit.level}, so {action} is not allowed there."


def _key_policy_gap(action: str, role: Role, culprit: Culprit, trust: AccountTrust | None) -> str:
    caller = arn_account(role.arn)
    if trust is not None and caller and trust.account != caller:
        return (
            f"The {culprit.policy} (account {trust.account}) does not allow role {role.name} "
            f"of account {caller} to use {action}: a key in another account must allow the "
            "role or its account in its key policy."
        )
    unmet = unmet_trust_conditions(trust)
    if unmet:
        return (
            f"The {culprit.policy} allows account {trust.account if trust else '?'} only "
            f"under conditions this request does not meet ({'; '.join(unmet)}), so role "
            f"{role.name}'s IAM allow for {action} has no effect."
        )
    if trust is not None and not trust.trusted:
        return (
            f"The {culprit.policy} lacks the default statement allowing the account, so "
            f"role {role.name}'s IAM allow for {action} has no effect."
        )
    return f"The {culprit.policy} does not allow role {role.name} to use {action}."


def _aws_managed(key: KmsKey | None) -> str:
    if key is None or key.key_manager != KeyManager.AWS:
        return ""
    return " It is an AWS managed key: its key policy cannot be edited."
