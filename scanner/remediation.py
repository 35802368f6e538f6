"""The minimal change that turns one failed check into a pass.

Every fix is a `Fix` (scanner.model): kind, target, summary, statement, commands plus,
for edits of an existing deny, the offending statement. `statement` is always something to
add (or the corrected statement to put in place of the offending one). Fixes that add
statements to one role or policy are merged by `merge_fixes` into one policy document,
shaped like AWS's documented example for creating a backup vault.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scanner.model import Fix, KeyManager, Layer
from scanner.policy.arn import role_name

Statement = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """What decide knows about one failure, in the terms a fix needs."""

    account_id: str
    region: str
    role_arn: str
    action: str
    resource: str
    layer: str | None
    decision: str | None
    policy: str | None = None  # name of the deciding policy
    policy_id: str | None = None  # SCP/RCP id or policy ARN, for commands
    level: str | None = None  # where an SCP/RCP is attached: "OU Prod", "root", "account …"
    statement_label: str | None = None  # Sid or #index of the deciding statement
    statement_doc: dict[str, Any] | None = None  # that statement's JSON
    key_arn: str | None = None
    key_policy_enables_iam: bool = True  # the key policy trusts the account (see below)
    # the key policy names the account only under conditions this request does not
    # meet: those statements and conditions, as `"Sid" (StringEquals kms:ViaService)`
    key_trust_unmet: tuple[str, ...] = ()
    key_manager: str = KeyManager.CUSTOMER  # DescribeKey's KeyManager

    @property
    def role_name(self) -> str:
        return role_name(self.role_arn)


def fix_for(finding: Finding) -> Fix:
    """The minimal change for a denied (role, action, resource)."""
    layer, decision = finding.layer, finding.decision
    if layer == Layer.RESOURCE_POLICY and finding.key_manager == KeyManager.AWS:
        return _aws_managed_key_fix(finding)
    if layer == "identity" and decision == "implicitDeny":
        return _add_identity_statement(finding)
    if layer == "permissions_boundary" and decision == "implicitDeny":
        return _add_boundary_statement(finding)
    if layer == "resource_policy" and decision == "implicitDeny":
        if not finding.key_policy_enables_iam and not finding.key_trust_unmet:
            return _restore_key_policy_default(finding)
        return _allow_in_key_policy(finding)
    if layer in ("scp", "rcp") and decision == "implicitDeny":
        return _extend_allow_list(finding)
    if decision == "explicitDeny" and layer is not None:
        return _narrow_deny(finding)
    return _investigate(finding)


def allow_statement(actions: list[str], resource: str | list[str], sid: str = "") -> Statement:
    statement: Statement = {"Effect": "Allow", "Action": sorted(set(actions)), "Resource": resource}
    return {"Sid": sid, **statement} if sid else statement


def _resource_for(finding: Finding) -> str:
    """The narrowest resource that still covers the request, as AWS's example uses."""
    if finding.action.lower().startswith("backup:createbackupvault"):
        partition = _partition_of(finding.role_arn)
        return f"arn:{partition}:backup:{finding.region}:{finding.account_id}:backup-vault:*"
    return finding.resource


def _partition_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 and parts[1] else "aws"


def _add_identity_statement(finding: Finding) -> Fix:
    statement = allow_statement([finding.action], _resource_for(finding))
    return Fix(
        kind="add-identity-statement",
        target=finding.role_arn,
        summary=(
            f"No identity policy of role {finding.role_name} allows {finding.action}: "
            f"add this statement to one of its policies."
        ),
        statement=statement,
        commands=[
            f"aws iam put-role-policy --role-name {finding.role_name} "
            "--policy-name VaultscanBackupVaultAccess --policy-document file://policy.json"
        ],
    )


def _add_boundary_statement(finding: Finding) -> Fix:
    boundary = finding.policy or "the permissions boundary"
    statement = allow_statement([finding.action], _resource_for(finding))
    commands = []
    if finding.policy_id and finding.policy_id.startswith("arn:"):
        commands.append(
            f"aws iam create-policy-version --policy-arn {finding.policy_id} "
            "--policy-document file://boundary.json --set-as-default"
        )
    return Fix(
        kind="add-boundary-statement",
        target=finding.policy_id or boundary,
        summary=(
            f"The permissions boundary {boundary} of role {finding.role_name} does not allow "
            f"{finding.action}: add this statement to the boundary policy."
        ),
        statement=statement,
        commands=commands,
    )


def default_key_statement(account_id: str, partition: str = "aws") -> Statement:
    return {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def _key_policy_commands(key_arn: str, region: str) -> list[str]:
    return [
        f"aws kms get-key-policy --key-id {key_arn} --policy-name default "
        f"--region {region} --query Policy --output text > key-policy.json",
        f"aws kms put-key-policy --key-id {key_arn} --policy-name default "
        f"--region {region} --policy file://key-policy.json",
    ]


def _restore_key_policy_default(finding: Finding) -> Fix:
    key = finding.key_arn or finding.resource
    return Fix(
        kind="restore-key-policy-default",
        target=key,
        summary=(
            f"The key policy of {key} lacks the default statement that lets IAM policies "
            f"grant access, so the role's IAM allow for {finding.action} has no effect: "
            "restore the statement."
        ),
        statement=default_key_statement(finding.account_id, _partition_of(key)),
        commands=tuple(_key_policy_commands(key, finding.region)),
    )


def _role_key_statement(finding: Finding) -> Statement:
    return {
        "Sid": "AllowBackupRole",
        "Effect": "Allow",
        "Principal": {"AWS": finding.role_arn},
        "Action": [finding.action],
        "Resource": "*",
    }


def _allow_in_key_policy(finding: Finding) -> Fix:
    key = finding.key_arn or finding.resource
    statement = _role_key_statement(finding)
    why = "its account statement does not cover this request"
    if finding.key_trust_unmet:
        why = (
            f"it allows account {finding.account_id} only under conditions this request "
            f"does not meet: {'; '.join(finding.key_trust_unmet)}"
        )
    return Fix(
        kind="add-key-policy-statement",
        target=key,
        summary=(
            f"The key policy of {key} does not let role {finding.role_name} use "
            f"{finding.action} ({why}): add this statement."
        ),
        statement=statement,
        commands=tuple(_key_policy_commands(key, finding.region)),
    )


def _aws_managed_key_fix(finding: Finding) -> Fix:
    """Nobody can change the policy of an AWS managed key: "you can only change the key
    policy for a customer managed key. The policies of AWS managed keys are created and
    managed by the AWS service that created the KMS key in your account" (AWS KMS
    Developer Guide, "Change a key policy"). The fix is on the caller's side, or a
    customer managed key for the vault."""
    key = finding.key_arn or finding.resource
    why = ""
    if finding.key_trust_unmet:
        why = f" (conditions not met: {'; '.join(finding.key_trust_unmet)})"
    elif finding.statement_label:
        why = f" (statement {finding.statement_label} of its policy)"
    return Fix(
        kind="use-customer-managed-key",
        target=key,
        summary=(
            f"{key} is an AWS managed key, whose key policy nobody can edit, and it does not "
            f"let role {finding.role_name} use {finding.action}{why}. Make the request the "
            "way its policy allows (through AWS Backup, from the key's own account), or "
            "encrypt the vault with a customer managed key whose key policy keeps the "
            "default statement and adds this one."
        ),
        statement=_role_key_statement(finding),
        commands=(
            f"aws kms create-key --region {finding.region} --description 'AWS Backup vault "
            "key' --policy file://key-policy.json",
            f"aws kms create-alias --region {finding.region} --alias-name "
            "alias/backup-vault-key --target-key-id KEY_ID",
        ),
    )


def _extend_allow_list(finding: Finding) -> Fix:
    kind_name = "SCP" if finding.layer == "scp" else "RCP"
    level = finding.level or "one level of the organization path"
    statement = allow_statement([finding.action], "*")
    if finding.layer == "rcp":
        statement = {"Effect": "Allow", "Principal": "*", **statement}
    if finding.policy:
        summary = (
            f"No {kind_name} attached at {level} allows {finding.action} (every level must): "
            f"add it to {finding.policy} there."
        )
    else:
        summary = (
            f"No {kind_name} is attached at {level}, so nothing there allows "
            f"{finding.action}: attach the FullAWSAccess policy or an allow-list with it."
        )
    commands = []
    if finding.policy_id:
        commands = [
            f"aws organizations describe-policy --policy-id {finding.policy_id}",
            f"aws organizations update-policy --policy-id {finding.policy_id} "
            "--content file://policy.json",
        ]
    return Fix(
        kind="extend-scp-allow-list" if finding.layer == "scp" else "extend-rcp-allow-list",
        target=finding.policy_id or level,
        summary=summary,
        statement=statement,
        commands=commands,
    )


def _exempt_role(statement: dict[str, Any], role_arn: str) -> dict[str, Any]:
    """The deny statement with an exception for the designated role (ArnNotLike)."""
    corrected = copy.deepcopy(statement)
    conditions = corrected.setdefault("Condition", {})
    existing = conditions.setdefault("ArnNotLike", {})
    current = existing.get("aws:PrincipalArn")
    values = [current] if isinstance(current, str) else list(current or [])
    if role_arn not in values:
        values.append(role_arn)
    existing["aws:PrincipalArn"] = values[0] if len(values) == 1 else values
    return corrected


def _names_role(statement: dict[str, Any], role_arn: str) -> bool:
    principal = statement.get("Principal")
    names = principal.get("AWS") if isinstance(principal, dict) else None
    names = [names] if isinstance(names, str) else list(names or [])
    return role_arn in names


_DENY_KINDS = {
    "scp": ("edit-scp-deny", "SCP"),
    "rcp": ("edit-rcp-deny", "RCP"),
    "resource_policy": ("edit-key-policy-deny", "key policy"),
    "permissions_boundary": ("edit-boundary-deny", "permissions boundary"),
    "identity": ("edit-identity-deny", "identity policy"),
}


def _narrow_deny(finding: Finding) -> Fix:
    kind, label = _DENY_KINDS.get(finding.layer or "", ("edit-deny", "policy"))
    where = f" attached at {finding.level}" if finding.level else ""
    statement = finding.statement_label or "(unknown statement)"
    policy = finding.policy or label
    summary = (
        f"Statement {statement} of {policy}{where} denies {finding.action}: remove the "
        f"action from it, or exempt role {finding.role_name} as shown."
    )
    corrected = None
    if finding.statement_doc is not None:
        if _names_role(finding.statement_doc, finding.role_arn):
            # the deny targets this very role: an exception would empty it, so remove it
            summary = (
                f"Statement {statement} of {policy}{where} denies {finding.action} to role "
                f"{finding.role_name} by name: remove the statement (or the action from it)."
            )
        else:
            corrected = _exempt_role(finding.statement_doc, finding.role_arn)
    return Fix(
        kind=kind,
        target=finding.policy_id or policy,
        summary=summary,
        statement=corrected,
        commands=tuple(_deny_commands(finding)),
        offending_statement=finding.statement_doc,
    )


def _deny_commands(finding: Finding) -> list[str]:
    if finding.layer in ("scp", "rcp") and finding.policy_id:
        return [
            f"aws organizations describe-policy --policy-id {finding.policy_id}",
            f"aws organizations update-policy --policy-id {finding.policy_id} "
            "--content file://policy.json",
        ]
    if finding.layer == "resource_policy" and finding.key_arn:
        return _key_policy_commands(finding.key_arn, finding.region)
    if finding.layer == "identity" and finding.policy and finding.policy.startswith("inline:"):
        name = finding.policy.rsplit("/", 1)[-1]
        return [
            f"aws iam get-role-policy --role-name {finding.role_name} --policy-name {name}",
            f"aws iam put-role-policy --role-name {finding.role_name} --policy-name {name} "
            "--policy-document file://policy.json",
        ]
    if finding.policy_id and finding.policy_id.startswith("arn:"):
        return [
            f"aws iam create-policy-version --policy-arn {finding.policy_id} "
            "--policy-document file://policy.json --set-as-default"
        ]
    return []


def _investigate(finding: Finding) -> Fix:
    """The simulator denies what the engine allows: show how to ask AWS for the detail."""
    return Fix(
        kind="investigate-simulator-deny",
        target=finding.role_arn,
        summary=(
            f"AWS's IAM policy simulator denies {finding.action} although vaultscan's engine "
            "allows it over the same policies: look at the simulator's matched statements."
        ),
        statement=None,
        commands=[
            f"aws iam simulate-principal-policy --policy-source-arn {finding.role_arn} "
            f"--action-names {finding.action} --resource-arns {finding.resource}"
        ],
    )


# --- key state ------------------------------------------------------------------------


def key_state_fix(key_arn: str, region: str, state: str, *, alias: str | None = None) -> Fix:
    """The fix for a vault key that is not usable: enable, cancel deletion, or create it."""
    if state == "Disabled":
        return Fix(
            kind="enable-key",
            target=key_arn,
            summary=f"Key {key_arn} is disabled: enable it.",
            statement=None,
            commands=[f"aws kms enable-key --key-id {key_arn} --region {region}"],
        )
    if state == "PendingDeletion":
        return Fix(
            kind="cancel-key-deletion",
            target=key_arn,
            summary=(
                f"Key {key_arn} is scheduled for deletion: cancel the deletion, then enable "
                "it (a key whose deletion is cancelled stays disabled)."
            ),
            statement=None,
            commands=[
                f"aws kms cancel-key-deletion --key-id {key_arn} --region {region}",
                f"aws kms enable-key --key-id {key_arn} --region {region}",
            ],
        )
    if state == "NotCreated":
        name = alias or "alias/backup-vault-key"
        return Fix(
            kind="create-key",
            target=name,
            summary=(
                f"No key {name} exists in {region}: create a symmetric encryption key and "
                "give it that alias, or point keys.default / keys.per_region at an existing key."
            ),
            statement=None,
            commands=[
                f"aws kms create-key --region {region} --description 'AWS Backup vault key'",
                f"aws kms create-alias --region {region} --alias-name {name} "
                "--target-key-id KEY_ID",
            ],
        )
    if state == "WrongSpec":
        return Fix(
            kind="use-symmetric-key",
            target=key_arn,
            summary=(
                f"Key {key_arn} is not a symmetric encryption key; AWS Backup vaults need "
                "a SYMMETRIC_DEFAULT key with usage ENCRYPT_DECRYPT: configure such a key."
            ),
            statement=None,
            commands=[],
        )
    return Fix(
        kind="key-unavailable",
        target=key_arn,
        summary=f"Key {key_arn} is in state {state}, which cannot encrypt a vault.",
        statement=None,
        commands=[f"aws kms describe-key --key-id {key_arn} --region {region}"],
    )


# --- summaries ------------------------------------------------------------------------

_SID_BY_PREFIX = {"kms": "UseVaultKey", "backup": "CreateBackupVaults"}


def merge_fixes(fixes: Sequence[Fix | Mapping[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Fixes of `kind` that add statements, merged per target into one policy document.
    Takes fixes or their stored form (result rows read back from the database).

    One statement per service, as in AWS's example policy for creating a vault: the KMS
    actions on the key ARNs, backup:CreateBackupVault on the vault ARN pattern,
    backup-storage:MountCapsule on "*". Returns target -> policy document.
    """
    # target -> service prefix -> (actions, resources)
    grouped: dict[str, dict[str, tuple[set[str], set[str]]]] = defaultdict(dict)
    for item in fixes:
        fix = item.to_dict() if isinstance(item, Fix) else item
        if fix.get("kind") != kind or not fix.get("statement"):
            continue
        statement = fix["statement"]
        resources = statement["Resource"]
        for action in statement["Action"]:
            prefix = action.split(":", 1)[0].lower()
            actions, targets = grouped[fix["target"]].setdefault(prefix, (set(), set()))
            actions.add(action)
            targets.update([resources] if isinstance(resources, str) else resources)
    documents: dict[str, dict[str, Any]] = {}
    for role_arn, services in grouped.items():
        statements = []
        for prefix in sorted(services):
            actions, targets = services[prefix]
            resource: str | list[str] = "*" if "*" in targets else sorted(targets)
            if isinstance(resource, list) and len(resource) == 1:
                resource = resource[0]
            sid = _SID_BY_PREFIX.get(prefix, "MountBackupStorage")
            statements.append(allow_statement(sorted(actions), resource, sid))
        documents[role_arn] = {"Version": "2012-10-17", "Statement": statements}
    return documents
