"""The `Principal` / `NotPrincipal` elements of resource-based policies and how a
request's principal (an IAM role or one of its sessions) matches them
(AWS JSON policy elements: Principal; NotPrincipal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from scanner.policy.arn import (
    arn_account,
    is_account_id,
    is_role_arn,
    is_service_linked_role,
    role_name,
    split_arn,
)

# How a statement names the principal; it decides what the grant is worth:
# "wildcard" ("*") and "session" (the exact session ARN) name the session itself,
# "role" names the role ARN, "account" names the principal's account (root or id).
MatchKind = Literal["wildcard", "session", "role", "account"]
PRINCIPAL_TYPES = ("AWS", "Service", "Federated", "CanonicalUser")
_UNIQUE_ID = re.compile(r"^A[A-Z]{3}[A-Z0-9]{12,}$")


@dataclass(frozen=True)
class RequestPrincipal:
    arn: str  # as given: role ARN or assumed-role session ARN
    account: str
    role_arn: str  # the role (for a session: derived from it)
    session_arn: str | None  # set when the request comes from a named session
    has_boundary: bool
    role_key: tuple[str, str] = ("", "")  # (account, role name), see for_role
    service_linked: bool = False  # a service-linked role (path /aws-service-role/)

    @classmethod
    def for_role(
        cls, arn: str, account: str, role_arn: str, session_arn: str | None, has_boundary: bool
    ) -> RequestPrincipal:
        # Only roles are matched by (account, name); any other principal (an IAM user)
        # only by its exact ARN.
        key = (account, role_name(role_arn)) if is_role_arn(role_arn) else ("", "")
        linked = is_service_linked_role(role_arn)
        return cls(arn, account, role_arn, session_arn, has_boundary, key, linked)


@dataclass(frozen=True)
class PrincipalSpec:
    everyone: bool = False  # "*" or {"AWS": "*"}
    accounts: frozenset[str] = frozenset()  # from 12-digit ids and :root ARNs
    role_keys: frozenset[tuple[str, str]] = frozenset()  # (account, role name)
    arns: frozenset[str] = frozenset()  # every other ARN named (users, sessions, ...)
    others: frozenset[str] = frozenset()  # service, federated, canonical-user names


@dataclass
class _Names:
    """What a Principal element names, gathered while parsing it."""

    everyone: bool = False
    accounts: set[str] = field(default_factory=set)
    role_keys: set[tuple[str, str]] = field(default_factory=set)
    arns: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)

    def spec(self) -> PrincipalSpec:
        return PrincipalSpec(
            self.everyone,
            frozenset(self.accounts),
            frozenset(self.role_keys),
            frozenset(self.arns),
            frozenset(self.others),
        )


def parse_principal(value: object) -> PrincipalSpec:
    """Raises ValueError with a message naming what is wrong."""
    if value == "*":
        return PrincipalSpec(everyone=True)
    if not isinstance(value, dict) or not value:
        raise ValueError('must be "*" or an object such as {"AWS": "arn:..."}')
    names = _Names()
    for kind, listed in value.items():
        for name in _principal_names(kind, listed):
            if kind != "AWS":
                names.others.add(f"{kind}:{name}")
            else:
                _add_aws_name(names, name)
    return names.spec()


def _principal_names(kind: object, names: object) -> list[str]:
    if kind not in PRINCIPAL_TYPES:
        raise ValueError(f"unknown principal type {kind!r}; use one of {PRINCIPAL_TYPES}")
    listed = [names] if isinstance(names, str) else names
    valid = isinstance(listed, list) and all(isinstance(n, str) for n in listed)
    if not valid or not listed:
        raise ValueError(f"{kind} must be a string or a non-empty list of strings")
    return listed


def _add_aws_name(names: _Names, name: str) -> None:
    if name == "*":
        names.everyone = True
        return
    if is_account_id(name):
        names.accounts.add(name)
        return
    parts = split_arn(name)
    if parts is None and _UNIQUE_ID.match(name):
        # A unique id (AROA..., AIDA...) is what a policy shows once the role or user
        # it named was deleted; it matches no current principal.
        names.others.add(f"AWS:{name}")
        return
    if parts is None:
        raise ValueError(f"{name!r} is not an account id, an ARN, a unique id or *")
    account = arn_account(name) or ""
    if parts[2] == "iam" and parts[5] == "root":
        names.accounts.add(account)
        return
    if parts[2] == "iam" and parts[5].startswith("role/"):
        names.role_keys.add((account, role_name(parts[5])))
    names.arns.add(name)


def match_principal(spec: PrincipalSpec, principal: RequestPrincipal) -> MatchKind | None:
    """The most specific way `spec` names the request's principal, or None."""
    if spec.everyone:
        return "wildcard"
    if principal.session_arn is not None and principal.session_arn in spec.arns:
        return "session"
    if principal.session_arn is None and principal.role_key == ("", ""):
        if principal.arn in spec.arns:
            return "session"  # an IAM user named directly: the caller itself
    elif principal.role_key in spec.role_keys:
        return "role"
    if principal.account in spec.accounts:
        return "account"
    return None


def not_principal_applies(spec: PrincipalSpec, principal: RequestPrincipal, effect: str) -> bool:
    """Whether a statement with `NotPrincipal` applies to the request's principal.

    AWS may check the account, then the role, then the session, so a principal is
    exempt only when every one of them is listed (NotPrincipal docs: list the session,
    the role and the account). A Deny with NotPrincipal always applies to a principal
    that has a permissions boundary, whatever it lists (Permissions boundaries for IAM
    entities).
    """
    if effect == "Deny" and principal.has_boundary:
        return True
    if spec.everyone:
        return False
    if principal.role_key == ("", ""):  # not a role: an IAM user and its account
        return not (principal.account in spec.accounts and principal.arn in spec.arns)
    exempt = principal.account in spec.accounts and principal.role_key in spec.role_keys
    if principal.session_arn is not None:
        exempt = exempt and principal.session_arn in spec.arns
    return not exempt
