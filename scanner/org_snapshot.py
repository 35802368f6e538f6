"""An Organization as JSON and back: what a replica joining a shared scan reads instead of
walking AWS Organizations again (whose quotas are per organization)."""

from __future__ import annotations

from typing import Any

from scanner.model import Account, NamedPolicy, Organization, OrgUnit


def _account(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "email": account.email,
        "status": account.status,
        "ou_path": [[unit.id, unit.name] for unit in account.ou_path],
        "tags": [list(tag) for tag in account.tags],
    }


def _policies(attached: dict[str, list[NamedPolicy]]) -> dict[str, Any]:
    """Documents once each (FullAWSAccess sits on every target), attachments by name."""
    documents = {p.name: p.document for policies in attached.values() for p in policies}
    return {
        "documents": documents,
        "targets": {target: [p.name for p in policies] for target, policies in attached.items()},
    }


def to_json(organization: Organization) -> dict[str, Any]:
    scanned = {account.id for account in organization.accounts}
    return {
        "management_account_id": organization.management_account_id,
        "id": organization.id,
        "scps_enabled": organization.scps_enabled,
        "rcps_enabled": organization.rcps_enabled,
        "accounts": [account.id for account in organization.accounts],
        "members": [_account(a) for a in organization.members.values()]
        + [_account(a) for a in organization.accounts if a.id not in organization.members],
        "scps": _policies(organization.scps),
        "rcps": _policies(organization.rcps),
        "scanned": len(scanned),
    }


def _from_account(raw: dict[str, Any]) -> Account:
    return Account(
        id=raw["id"],
        name=raw["name"],
        email=raw.get("email", ""),
        status=raw.get("status", "ACTIVE"),
        ou_path=tuple(OrgUnit(unit_id, name) for unit_id, name in raw["ou_path"]),
        tags=tuple((key, value) for key, value in raw.get("tags", ())),
    )


def _from_policies(raw: dict[str, Any]) -> dict[str, list[NamedPolicy]]:
    policies = {name: NamedPolicy(name, document) for name, document in raw["documents"].items()}
    return {target: [policies[n] for n in names] for target, names in raw["targets"].items()}


def from_json(raw: dict[str, Any]) -> Organization:
    members = {account.id: account for account in map(_from_account, raw["members"])}
    return Organization(
        management_account_id=raw["management_account_id"],
        accounts=[members[account_id] for account_id in raw["accounts"]],
        scps=_from_policies(raw["scps"]),
        rcps=_from_policies(raw["rcps"]),
        scps_enabled=raw["scps_enabled"],
        rcps_enabled=raw["rcps_enabled"],
        id=raw.get("id", ""),
        members=members,
    )
