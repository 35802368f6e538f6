"""Discovery: the organization tree, which accounts to scan, and the SCPs/RCPs on their paths.

The tree is walked top-down with ListOrganizationalUnitsForParent and
ListAccountsForParent: two calls (plus pages) per OU give every account its full OU path,
where ListAccounts + ListParents would cost one call per account per level. Subtrees under
an excluded OU are not walked.

Policies are needed only for targets (root, OUs, accounts) on the paths of the accounts
that will be scanned, and each is described once per scan. Attachments are read the
cheaper way round: ListPolicies + ListTargetsForPolicy (one call per policy) when the
organization has fewer policies of the type than there are targets, which is the usual
case for large organizations, else ListPoliciesForTarget (one call per target).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from scanner.aws.org_parallel import PolicyListing, walk
from scanner.aws.ratelimit import is_throttling, throttled_text
from scanner.aws.session import AccountAccessError, AwsSessions, error_text
from scanner.config import Settings
from scanner.model import Account, NamedPolicy, Organization, OrgUnit

log = logging.getLogger(__name__)

SCP = "SERVICE_CONTROL_POLICY"
RCP = "RESOURCE_CONTROL_POLICY"


class DiscoveryError(Exception):
    """The organization could not be read; the message names the call and what to do."""


def is_active(raw: dict[str, Any]) -> bool:
    """ACTIVE accounts only. Newer responses carry `State` (ACTIVE, SUSPENDED,
    PENDING_CLOSURE, CLOSED, ...) next to the older `Status`; `State` wins when present."""
    return (raw.get("State") or raw.get("Status")) == "ACTIVE"


def is_selected(account: Account, settings: Settings, management_account_id: str | None) -> bool:
    """Include/exclude filters. With no include list every account is included; otherwise
    an account is included when it is listed or sits under an included OU (any depth).
    Exclusions (account or any OU on its path) always win."""
    if account.id == management_account_id and not settings.member.scan_management_account:
        return False
    path_ids = {unit.id for unit in account.ou_path}
    accounts, ous = settings.accounts, settings.ous
    if accounts.include or ous.include:
        if account.id not in accounts.include and not path_ids & set(ous.include):
            return False
    return account.id not in accounts.exclude and not path_ids & set(ous.exclude)


class _Walker:
    def __init__(self, sessions: AwsSessions) -> None:
        try:
            self.client = sessions.org_client()
        except AccountAccessError as exc:
            raise DiscoveryError(
                f"cannot read AWS Organizations: {exc.reason}. Check organization.role_arn "
                "and that its trust policy allows the scanner's identity."
            ) from exc
        self.throttle = sessions.org_throttle
        self.described: dict[str, NamedPolicy] = {}
        self._describe_lock = threading.Lock()

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return self.throttle.call(self.client, operation, **params)
        except (ClientError, BotoCoreError) as exc:
            raise _discovery_error(operation, exc) from exc

    def items(self, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
        try:
            return [
                item
                for page in self.throttle.pages(self.client, operation, **params)
                for item in page.get(key, [])
            ]
        except (ClientError, BotoCoreError) as exc:
            raise _discovery_error(operation, exc) from exc

    def parent_accounts(self, path: tuple[OrgUnit, ...]) -> list[Account]:
        """The active accounts directly under the last unit of `path`."""
        found: list[Account] = []
        for raw in self.items("ListAccountsForParent", "Accounts", ParentId=path[-1].id):
            if not is_active(raw):
                log.info("skipping inactive account", extra={"account": raw["Id"]})
                continue
            found.append(
                Account(
                    id=raw["Id"],
                    name=raw.get("Name", ""),
                    email=raw.get("Email", ""),
                    status="ACTIVE",
                    ou_path=path,
                )
            )
        return found

    def child_units(
        self, path: tuple[OrgUnit, ...], excluded_ous: set[str]
    ) -> list[tuple[OrgUnit, ...]]:
        """The paths of the OUs directly under the last unit of `path`, minus excluded."""
        return [
            (*path, OrgUnit(raw["Id"], raw.get("Name", raw["Id"])))
            for raw in self.items(
                "ListOrganizationalUnitsForParent", "OrganizationalUnits", ParentId=path[-1].id
            )
            if raw["Id"] not in excluded_ous
        ]

    def policies_for_target(self, target_id: str, policy_type: str) -> list[NamedPolicy]:
        summaries = self.items(
            "ListPoliciesForTarget", "Policies", TargetId=target_id, Filter=policy_type
        )
        return [self.describe(summary["Id"]) for summary in summaries]

    def describe(self, policy_id: str) -> NamedPolicy:
        with self._describe_lock:  # walk threads may ask for the same policy
            return self._describe(policy_id)

    def _describe(self, policy_id: str) -> NamedPolicy:
        if policy_id not in self.described:
            policy = self.call("DescribePolicy", PolicyId=policy_id)["Policy"]
            summary = policy["PolicySummary"]
            try:
                document = json.loads(policy["Content"])
            except (TypeError, ValueError) as exc:
                raise DiscoveryError(f"policy {policy_id}: content is not JSON ({exc})") from exc
            self.described[policy_id] = NamedPolicy(
                name=f"{policy_id} ({summary.get('Name', '')})", document=document
            )
        return self.described[policy_id]


def _discovery_error(operation: str, exc: BaseException) -> DiscoveryError:
    if isinstance(exc, ClientError) and is_throttling(exc):
        # not a permission problem: say so, or the operator goes hunting for one
        return DiscoveryError(
            f"organizations:{operation} {throttled_text(exc)}: AWS Organizations is "
            "throttling this organization's calls (other tools share its quotas); the next "
            "scan starts over (AWS_MAX_ATTEMPTS allows more attempts, see "
            "docs/reliability.md)."
        )
    return DiscoveryError(
        f"organizations:{operation} failed: {error_text(exc)}. The scanner needs read access "
        "to AWS Organizations from the management account or a delegated administrator "
        "(organization.role_arn; actions listed in docs/read-role.md)."
    )


def _targets(accounts: list[Account], management_id: str | None) -> list[str]:
    """Root, OUs and accounts on the paths of `accounts` (the management account is
    never governed by SCPs or RCPs)."""
    return list(
        dict.fromkeys(
            target
            for account in accounts
            if account.id != management_id
            for target in [*(unit.id for unit in account.ou_path), account.id]
        )
    )


def _with_owner_tag(walker: _Walker, account: Account, tag: str) -> Account:
    """The account with its `tag` (report.owner_tag) when it carries one.
    https://docs.aws.amazon.com/organizations/latest/APIReference/API_ListTagsForResource.html
    """
    tags = walker.items("ListTagsForResource", "Tags", ResourceId=account.id)
    found = [(item["Key"], item["Value"]) for item in tags if item.get("Key") == tag]
    return dataclasses.replace(account, tags=tuple(found)) if found else account


def discover(
    sessions: AwsSessions,
    settings: Settings,
    on_account: Callable[[Account], None] | None = None,
) -> Organization:
    """The accounts to scan with their OU paths, and the SCPs/RCPs along those paths.

    `on_account` is called (from a walk thread) for each account to scan as soon as its
    parent's listing returns, so its collection can start while the walk goes on; not
    with `report.owner_tag`, whose tags are read after the walk."""
    walker = _Walker(sessions)
    description = walker.call("DescribeOrganization")["Organization"]
    management_id = description.get("MasterAccountId")
    roots = walker.items("ListRoots", "Roots")
    if not roots:
        raise DiscoveryError("organizations:ListRoots returned no root")
    root_raw = roots[0]
    enabled = {
        item["Type"] for item in root_raw.get("PolicyTypes", []) if item.get("Status") == "ENABLED"
    }
    root = OrgUnit(root_raw["Id"], root_raw.get("Name", "Root"))
    scps = PolicyListing(walker, SCP) if SCP in enabled else None
    rcps = PolicyListing(walker, RCP) if RCP in enabled else None
    owner_tag = getattr(getattr(settings, "report", None), "owner_tag", None)
    early = None if owner_tag else on_account

    def found_one(account: Account) -> None:
        if early is not None and is_selected(account, settings, management_id):
            early(account)
        # attachments listed by policy start while the walk goes on, once certainly cheaper
        if account.id == management_id:
            return
        path = [*(unit.id for unit in account.ou_path), account.id]
        if scps is not None and is_selected(account, settings, management_id):
            scps.add_targets(path)
        if rcps is not None:
            rcps.add_targets(path)

    try:
        if root.id in settings.ous.exclude:
            found: list[Account] = []
        else:
            found = walk(walker, root, set(settings.ous.exclude), found_one)
        accounts = [account for account in found if is_selected(account, settings, management_id)]
        if owner_tag:
            accounts = [_with_owner_tag(walker, account, owner_tag) for account in accounts]
        organization = Organization(
            management_account_id=management_id,
            accounts=accounts,
            scps_enabled=SCP in enabled,
            rcps_enabled=RCP in enabled,
            id=description.get("Id", ""),
            # a checked key may live in any account (a central key in a security account)
            members={account.id: account for account in found},
        )
        targets = _targets(accounts, management_id)
        if targets and scps is not None:
            organization.scps = scps.attachments(targets)
        # RCPs govern a key from its owner's path, which may be an account not scanned
        rcp_targets = _targets(found, management_id)
        if rcp_targets and rcps is not None:
            organization.rcps = rcps.attachments(rcp_targets)
    finally:
        for listing in (scps, rcps):
            if listing is not None:
                listing.close()
    log.info(
        "organization discovered",
        extra={
            "accounts": len(accounts),
            "targets": len(targets),
            "policies": len(walker.described),
        },
    )
    return organization
