"""Can a key encrypt a vault at all (enabled, not being deleted, symmetric), and the
verdict for key actions that cannot be decided because the key could not be read."""

from __future__ import annotations

from scanner.decide.naming import check_for, key_label
from scanner.model import KEY_STATE_CHECK, Account, CheckResult, KmsKey, Role
from scanner.remediation import key_state_fix

USABLE_STATE = "Enabled"
NOT_CREATED_STATES = ("NotCreated", "NotFound")
_STATE_WORDS = {
    "Disabled": "disabled",
    "PendingDeletion": "scheduled for deletion",
    "PendingReplicaDeletion": "scheduled for deletion (replica)",
    "PendingImport": "waiting for imported key material",
    "Unavailable": "unavailable (its custom key store is disconnected)",
}


def key_state_result(account: Account, key: KmsKey, configured_alias: str | None) -> CheckResult:
    """Can this key encrypt a vault at all: enabled, not being deleted, symmetric?"""
    result = CheckResult(
        account_id=account.id,
        region=key.region,
        role_arn="",
        check=str(check_for(KEY_STATE_CHECK, key)),
        resource=key.arn,
        status="pass",
    )
    state = key.key_state
    if state == "Unreadable":
        result.status = "error"
        result.message = (
            f"Key {_label(key)} could not be read{unreadable_why(key)}: allow the read role "
            "kms:DescribeKey and kms:GetKeyPolicy on it (and check the key policy allows the "
            "account); its checks are undecided, neither pass nor fail."
        )
    elif state in NOT_CREATED_STATES:
        _not_created(result, key, configured_alias)
    elif state != USABLE_STATE:
        result.status = "fail"
        when = (
            f" on {key.deletion_date:%Y-%m-%d}"
            if state == "PendingDeletion" and key.deletion_date
            else ""
        )
        words = _STATE_WORDS.get(state, f"in state {state}")
        result.message = f"Key {_label(key)} is {words}{when}; it cannot encrypt a vault."
        result.remediation = key_state_fix(key.arn, key.region, state)
    elif key.key_spec != "SYMMETRIC_DEFAULT" or key.key_usage != "ENCRYPT_DECRYPT":
        result.status = "fail"
        result.message = (
            f"Key {_label(key)} is {key.key_spec}/{key.key_usage}; AWS Backup vaults need a "
            "SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT."
        )
        result.remediation = key_state_fix(key.arn, key.region, "WrongSpec")
    else:
        result.message = f"Key {_label(key)} is enabled and symmetric."
    if key.choice:
        result.message += f" Chosen: {key.choice}"
    return result


def unreadable_why(key: KmsKey) -> str:
    """Why the collect stage could not read the key, as it recorded in its sources."""
    reasons = [item.split(":", 1)[1] for item in key.sources if item.startswith("unreadable:")]
    return f" ({reasons[0]})" if reasons else ""


def _label(key: KmsKey) -> str:
    return f"{key.aliases[0]} ({key.arn})" if key.aliases else key.arn


def _not_created(result: CheckResult, key: KmsKey, configured_alias: str | None) -> None:
    alias = key.aliases[0] if key.aliases else configured_alias
    if alias and alias.startswith("alias/aws/"):
        result.message = (
            f"{alias} does not exist yet in {key.region}; AWS creates this AWS managed "
            "key the first time a service uses it."
        )
        return
    result.status = "fail"
    result.message = f"Key {alias or key.arn} does not exist in {key.region}."
    result.remediation = key_state_fix(key.arn, key.region, "NotCreated", alias=alias)


def key_unusable_result(
    account: Account, role: Role, region: str, action: str, key: KmsKey
) -> CheckResult:
    """A key action that cannot be decided because the key (policy) could not be read."""
    return CheckResult(
        account_id=account.id,
        region=region,
        role_arn=role.arn,
        check=str(check_for(action, key)),
        resource=key.arn,
        status="error",
        message=(
            f"Not decided: the policy of key {key_label(key)} could not be read"
            f"{unreadable_why(key)}, so whether role {role.name} may use {action} on it is "
            "unknown."
        ),
    )


def configured_alias(key: KmsKey) -> str | None:
    return next((alias for alias in key.aliases if alias.startswith("alias/")), None)
