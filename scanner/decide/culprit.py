"""The policy, level and statement behind a failure, read from the engine's typed
result: the deciding layer's statements, and for SCPs and RCPs the level that denies or
the first level that does not allow. Never a second evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.decide.naming import (
    key_policy_name,
    org_policy_name,
    policy_id,
    statement_label,
)
from scanner.decide.scenarios import OrgPath
from scanner.model import KmsKey, NamedPolicy, PolicyDocument, Role
from scanner.policy import Decision, Evaluation, Layer, LayerResult, StatementRef


@dataclass(frozen=True)
class Culprit:
    policy: str | None = None
    policy_id: str | None = None
    level: str | None = None
    statement_label: str | None = None
    statement_doc: dict[str, Any] | None = None


def culprit_for(
    evaluation: Evaluation, *, scps: OrgPath, rcps: OrgPath, role: Role, key: KmsKey | None
) -> Culprit:
    layer = evaluation.deciding_layer
    result = evaluation.layer(layer) if layer is not None else None
    if layer is None or result is None:
        return Culprit()
    if layer in (Layer.SCP, Layer.RCP):
        return _org_culprit(result, scps if layer == Layer.SCP else rcps)
    policies = _policies_of(layer, role, key)
    if result.decision is Decision.EXPLICIT_DENY:
        return _denier(result.statements, policies)
    if layer == Layer.PERMISSIONS_BOUNDARY and role.permissions_boundary is not None:
        name = role.permissions_boundary.name
        return Culprit(policy=name, policy_id=name)
    if layer == Layer.RESOURCE_POLICY and key is not None:
        return Culprit(policy=key_policy_name(key.arn), policy_id=key.arn)
    return Culprit()


def _policies_of(layer: str, role: Role, key: KmsKey | None) -> list[NamedPolicy]:
    if layer == Layer.PERMISSIONS_BOUNDARY:
        boundary = role.permissions_boundary
        return [boundary] if boundary is not None else []
    if layer == Layer.IDENTITY:
        return role.identity_policies
    if layer == Layer.RESOURCE_POLICY and key is not None:
        return [NamedPolicy(key_policy_name(key.arn), key.key_policy or {})]
    return []


def _denier(refs: list[StatementRef], policies: list[NamedPolicy]) -> Culprit:
    ref = next((ref for ref in refs if ref.effect == "Deny"), None)
    if ref is None:
        return Culprit()
    documents = {policy.name: policy.document for policy in policies}
    return Culprit(
        policy=ref.policy,
        policy_id=policy_id(ref.policy),
        statement_label=statement_label(ref.sid, ref.index),
        statement_doc=statement_at(documents.get(ref.policy), ref.index),
    )


def _org_culprit(result: LayerResult, path: OrgPath) -> Culprit:
    """The level (and policy, statement) of an SCP/RCP denial."""
    for level in result.levels:
        if level.denying:
            return _org_denier(level.denying[0], path, level.index)
    failing = result.failing_levels()
    if not failing:
        return Culprit()
    number = failing[0].index
    label = _label(path, number)
    attached = path.levels[number] if number < len(path.levels) else []
    if not attached:
        return Culprit(level=label)
    if len(attached) == 1:
        return Culprit(policy=attached[0].name, policy_id=policy_id(attached[0].name), level=label)
    return Culprit(policy=", ".join(policy.name for policy in attached), level=label)


def _org_denier(ref: StatementRef, path: OrgPath, number: int) -> Culprit:
    label = _label(path, number)
    attached = path.levels[number] if number < len(path.levels) else []
    policy = next((p for p in attached if org_policy_name(p, label) == ref.policy), None)
    if policy is None:
        return Culprit(policy=ref.policy, level=label, statement_label=_ref_label(ref))
    return Culprit(
        policy=policy.name,
        policy_id=policy_id(policy.name),
        level=label,
        statement_label=_ref_label(ref),
        statement_doc=statement_at(policy.document, ref.index),
    )


def _label(path: OrgPath, number: int) -> str:
    return path.labels[number] if number < len(path.labels) else f"level {number}"


def _ref_label(ref: StatementRef) -> str:
    return statement_label(ref.sid, ref.index)


def statement_at(document: PolicyDocument | None, index: int) -> dict[str, Any] | None:
    if not document:
        return None
    statements = document.get("Statement", [])
    listed = [statements] if isinstance(statements, dict) else list(statements)
    return listed[index] if 0 <= index < len(listed) else None
