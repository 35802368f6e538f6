"""How verdicts and scenarios name things: organization levels, SCPs/RCPs at a level,
key policies, statements, and the check a verdict answers."""

from __future__ import annotations

from scanner.model import Account, CheckId, KmsKey, NamedPolicy


def level_labels(account: Account) -> list[str]:
    """Names of the SCP/RCP levels of an account: root, each OU, the account itself."""
    labels = []
    for unit in account.ou_path:
        labels.append("root" if unit.id.startswith("r-") else f"OU {unit.name}")
    labels.append(f"account {account.id}" + (f" ({account.name})" if account.name else ""))
    return labels


def org_policy_name(policy: NamedPolicy, level: str) -> str:
    """An SCP or RCP as explanations name it. The same policy is usually attached at
    several levels (FullAWSAccess at each), so the name says which one."""
    return f"{policy.name} at {level}"


def org_policy_names(levels: list[list[NamedPolicy]], labels: list[str]) -> list[list[str]]:
    return [
        [org_policy_name(policy, label) for policy in level]
        for level, label in zip(levels, labels, strict=False)
    ]


def key_policy_name(key_arn: str) -> str:
    return f"key policy of {key_arn}"


def statement_label(sid: str | None, index: int) -> str:
    return sid if sid else f"#{index}"


def policy_id(name: str) -> str:
    """'p-abc123 (DenyBackup)' -> 'p-abc123'; ARNs and other names stay as they are."""
    return name.split(" ", 1)[0] if name.startswith("p-") else name


def check_for(name: str, key: KmsKey | None) -> CheckId:
    """Checks of the configured key carry the plain action name; other keys (vault keys)
    add which key, so every check key stays unique within a region."""
    if key is None or not key.sources or "configured" in key.sources:
        return CheckId(name)
    return CheckId(name, key.aliases[0] if key.aliases else key.key_id)


def key_label(key: KmsKey) -> str:
    return key.aliases[0] if key.aliases else key.arn
