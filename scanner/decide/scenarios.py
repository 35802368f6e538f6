"""The scenario (spec/authz-scenario.md) for each request a check asks: built as a
`Scenario` object, never as a dict parsed again; its replayable JSON form comes from the
object (`Scenario.to_dict`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from scanner.decide.naming import key_policy_name, level_labels, org_policy_names
from scanner.model import Account, KeyManager, KmsKey, NamedPolicy, Organization, Role
from scanner.policy import Scenario
from scanner.policy.context import ContextPart


@dataclass(frozen=True)
class OrgPath:
    """The SCPs or RCPs governing one account: one list per level (root first, the
    account last) and how each level is named."""

    levels: list[list[NamedPolicy]]
    labels: list[str]

    @classmethod
    def of(cls, organization: Organization, account: Account, kind: Literal["scp", "rcp"]):
        return cls(organization.policy_path(account, kind), level_labels(account))


def key_owner(key: KmsKey) -> str | None:
    """The account that owns a key: the one its ARN names."""
    return key.owner_account or None


def rcp_path_for(
    organization: Organization, account: Account, key: KmsKey | None, own: OrgPath
) -> OrgPath:
    """The RCPs that govern the request's resource: those of the resource's account.
    For a key, its owner's path (a key in another account of the organization: that
    account's RCPs). For AWS managed keys the path is kept, and the scenario's
    key_manager tells the engine that RCPs do not apply (AWS KMS Developer Guide,
    "Resource control policies in AWS KMS")."""
    if key is None:
        return own
    owner = key_owner(key)
    if not owner or owner == account.id:
        return own
    member = organization.member(owner)
    if member is None:
        return OrgPath([], [])  # outside the scanned organization: its RCPs are unknown
    return OrgPath.of(organization, member, "rcp")


def build_scenario(
    *,
    role: Role,
    account: Account,
    action: str,
    resource: str,
    context: dict[str, Any],
    scps: list[list[NamedPolicy]],
    rcps: list[list[NamedPolicy]],
    key: KmsKey | None = None,
    name: str = "",
    rcp_labels: list[str] | None = None,
) -> Scenario:
    """The scenario for one request, with every policy named. `rcps` are those of the
    resource's owner, named after `rcp_labels` (default: the role's account levels)."""
    labels = level_labels(account)
    base = policies_scenario(
        role, account, OrgPath(scps, labels), OrgPath(rcps, rcp_labels or labels), key
    )
    return ask(base, account, action, resource, context, key, name)


def policies_scenario(
    role: Role, account: Account, scps: OrgPath, rcps: OrgPath, key: KmsKey | None
) -> Scenario:
    """Every policy a role's requests meet (on `key`, or on no key), named; its request
    is a placeholder that `ask` replaces."""
    boundary = role.permissions_boundary
    identity = role.identity_policies
    resource_policy = key.key_policy if key is not None else None
    return Scenario(
        principal_arn=role.arn,
        action="sts:GetCallerIdentity",
        resource="*",
        principal_account=account.id,
        resource_account=account.id,
        scps=tuple(tuple(policy.document for policy in level) for level in scps.levels),
        rcps=tuple(tuple(policy.document for policy in level) for level in rcps.levels),
        permissions_boundary=boundary.document if boundary else None,
        identity=tuple(policy.document for policy in identity),
        resource_policy=resource_policy,
        source=f"vaultscan scan of account {account.id}",
        policy_names={
            "scps": org_policy_names(scps.levels, scps.labels),
            "rcps": org_policy_names(rcps.levels, rcps.labels),
            "permissions_boundary": boundary.name if boundary else None,
            "identity": [policy.name for policy in identity],
            "resource_policy": key_policy_name(key.arn) if resource_policy is not None else None,
        },
        key_manager=_key_manager(key),
    )


def ask(
    base: Scenario,
    account: Account,
    action: str,
    resource: str,
    context: dict[str, Any],
    key: KmsKey | None,
    name: str = "",
    context_parts: tuple[ContextPart, ...] = (),
) -> Scenario:
    """`base`'s policies asked one request (`context_parts`: `context` as the engine
    reads it, normalized in shared pieces)."""
    owner = key_owner(key) if key is not None and resource == key.arn else None
    return base.with_request(
        action=action,
        resource=resource,
        resource_account=owner or account.id,
        context=context,
        name=name or f"{account.id} {base.principal_arn.rsplit('/', 1)[-1]} {action} {resource}",
        context_parts=context_parts,
    )


def _key_manager(key: KmsKey | None) -> str | None:
    """Recorded for every key, from DescribeKey's KeyManager (never from an alias)."""
    if key is None:
        return None
    return KeyManager.AWS if key.key_manager == KeyManager.AWS else KeyManager.CUSTOMER


def scenario_documents(scenario: Scenario) -> list[dict[str, Any] | None]:
    """Every policy document of a scenario, organization levels first."""
    return [
        *(document for level in scenario.scps for document in level),
        *(document for level in scenario.rcps for document in level),
        scenario.permissions_boundary,
        *scenario.identity,
        scenario.resource_policy,
    ]


def stored_scenario(scenario: Scenario, decision: str, layer: str | None) -> dict[str, Any]:
    """The replayable scenario stored with a verdict, stating the engine's answer."""
    out = scenario.to_dict()
    out["expected"] = str(decision)
    out["deciding_layer"] = None if layer is None else str(layer)
    return out
