"""One ChangeEvent -> the work that covers it, or the reason it needs none.

Pure: no AWS, no database. Key references are resolved to accounts later (plan), because
that needs the stored verdicts (which accounts' checks use the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from scanner.config import Settings
from scanner.events.catalog import Reach, reach_of
from scanner.events.parse import ChangeEvent

SERVICE_LINKED_PATH = "/aws-service-role/"


@dataclass(frozen=True)
class Rescan:
    """Collect and decide one account again; `role` limits drift to one role's checks."""

    account_id: str
    role: str | None = None  # a role name; None: every check of the account


@dataclass(frozen=True)
class KeyChange:
    """A key changed: rescan its owner and every account whose checks use it."""

    owner_account_id: str
    region: str
    key: str  # key id, key ARN or alias name, as the event gives it


@dataclass(frozen=True)
class PolicyChange:
    """An SCP or RCP changed (content: target None) or was attached/detached at `target`."""

    policy_id: str
    target_id: str | None = None


@dataclass(frozen=True)
class FullScan:
    reason: str


@dataclass(frozen=True)
class Ignored:
    reason: str


Work = Rescan | KeyChange | PolicyChange | FullScan


def work_for(event: ChangeEvent, settings: Settings) -> Work | Ignored:
    """The smallest work covering `event` (docs/events.md has the table)."""
    if event.error_code:
        return Ignored(f"the call failed ({event.error_code}); nothing changed")
    reach = reach_of(event.source, event.name)
    if reach is None:
        return Ignored(f"{event.name} cannot change a verdict")
    if reach == Reach.ROLE:
        return _role_work(event, settings)
    if reach == Reach.ACCOUNT:
        return _account_work(event)
    if reach == Reach.KEY:
        return _key_work(event)
    if reach == Reach.ORGANIZATION:
        return FullScan(f"{event.name} {event.request.get('policyType', '')}".strip())
    policy = event.request.get("policyId")
    if not isinstance(policy, str) or not policy:
        return Ignored(f"{event.name} without requestParameters.policyId")
    if reach == Reach.ORG_TARGET:
        target = event.request.get("targetId")
        if not isinstance(target, str) or not target:
            return Ignored(f"{event.name} without requestParameters.targetId")
        return PolicyChange(policy, target)
    return PolicyChange(policy)


def _role_work(event: ChangeEvent, settings: Settings) -> Rescan | Ignored:
    name = event.request.get("roleName")
    if not isinstance(name, str) or not name:
        return Ignored(f"{event.name} without requestParameters.roleName")
    if not _may_be_designated(name, event, settings):
        return Ignored(f"role {name} is not a designated role")
    return Rescan(event.account_id, name)


def _may_be_designated(name: str, event: ChangeEvent, settings: Settings) -> bool:
    """False only when the role cannot be designated whatever its path or tags: names are
    the sole criterion and none matches (the same case-insensitive globs as collect)."""
    selector = settings.roles
    if selector.tag is not None or selector.path is not None:
        return True  # a tag or path we cannot see in the event may designate it
    path = str(event.request.get("path") or "")
    if path.startswith(SERVICE_LINKED_PATH):
        return False
    return any(fnmatchcase(name.lower(), pattern.lower()) for pattern in selector.names)


def _account_work(event: ChangeEvent) -> Rescan | Ignored:
    if event.name == "MoveAccount":
        moved = event.request.get("accountId")
        if not isinstance(moved, str) or not moved:
            return Ignored("MoveAccount without requestParameters.accountId")
        return Rescan(moved)  # its OU path, and so its SCPs and RCPs, changed
    return Rescan(event.account_id)


def _key_work(event: ChangeEvent) -> KeyChange | Ignored:
    # responseElements.keyId carries the key ARN since December 2022 (KMS Developer
    # Guide, "Examples of AWS KMS log entries"); the request may hold only an id or alias
    for candidate in (
        *(arn for arn in event.resources if ":key/" in arn),
        event.response.get("keyId"),
        event.request.get("targetKeyId"),
        event.request.get("keyId"),
        event.request.get("aliasName"),
    ):
        if isinstance(candidate, str) and candidate:
            return KeyChange(event.account_id, event.region, candidate)
    return Ignored(f"{event.name} names no key")
