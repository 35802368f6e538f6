"""The request being authorized and its condition context, with the keys AWS derives
from the request itself filled in (IAM: Policy evaluation logic, "The request context";
AWS global condition context keys).

Derived unless the scenario gives them: aws:PrincipalArn (the role ARN, also for a
session), aws:PrincipalAccount, aws:PrincipalType (AssumedRole), aws:PrincipalIsAWSService
(false), aws:RequestedRegion (from the resource ARN's region), aws:ResourceAccount, and
for KMS actions kms:CallerAccount. aws:username is never present for a role; for an IAM
user it is the user's name, and aws:PrincipalType is User.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from scanner.policy.arn import (
    arn_region,
    is_assumed_role_arn,
    is_user_arn,
    role_name,
    session_to_role_arn,
)
from scanner.policy.principal import RequestPrincipal
from scanner.policy.variables import Context

ContextValue = str | bool | int | float | list[str | bool | int | float]


@dataclass(slots=True)
class Request:
    """One request as the engine reads it; built once per scenario and never changed
    (not frozen: a frozen dataclass takes several times as long to build, and the
    scanner builds one for every check)."""

    principal: RequestPrincipal
    action: str  # lower-case: actions compare case-insensitively
    resource: str
    resource_account: str
    context: Context
    key_manager: str = "CUSTOMER"  # a KMS key's KeyManager: "AWS" or "CUSTOMER"

    @property
    def cross_account(self) -> bool:
        return self.principal.account != self.resource_account

    @property
    def service(self) -> str:
        return self.action.split(":", 1)[0]


def normalize_value(value: ContextValue) -> str | tuple[str, ...]:
    """Context values as condition operators see them: strings, or tuples for lists."""
    if isinstance(value, list):
        return tuple(_scalar(item) for item in value)
    return _scalar(value)


def _scalar(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True, slots=True)
class ContextPart:
    """A piece of a request context as condition operators read it, normalized once for
    every request that carries it (the scanner's contexts are a few such pieces: the
    role's keys, the resource's and the requirement's)."""

    values: Context  # lower-case key -> normalized value
    plain: bool  # no two of its keys differ only by case


def normalize_context(context: dict[str, ContextValue]) -> ContextPart:
    values: Context = {}
    _normalize_into(values, context)
    return ContextPart(values, len(values) == len(context))


def _normalize_into(out: Context, context: dict[str, ContextValue]) -> None:
    for key, value in context.items():
        # strings (most values) need no conversion
        out[_lower_key(key)] = value if type(value) is str else normalize_value(value)


def build_request(
    principal_arn: str,
    principal_account: str,
    action: str,
    resource: str,
    resource_account: str,
    context: dict[str, ContextValue],
    has_boundary: bool,
    key_manager: str = "CUSTOMER",
    parts: tuple[ContextPart, ...] = (),
) -> Request:
    """The request with its derived keys. `parts`, when given, are `context` normalized
    in pieces (`context` is those pieces' keys and values merged in order): the request
    then reuses them instead of normalizing every key again."""
    principal, derived = _derived(
        principal_arn, principal_account, action, resource, resource_account, has_boundary
    )
    full: Context = dict(derived)
    if parts and _mergeable(parts):
        for part in parts:
            full.update(part.values)
    else:
        _normalize_into(full, context)
    return Request(principal, action.lower(), resource, resource_account, full, key_manager)


def _mergeable(parts: tuple[ContextPart, ...]) -> bool:
    """Whether merging the normalized pieces gives what normalizing the whole context
    gives. It does for one or two pieces in which no two keys differ only by case: a
    key spelled one way in the first piece and another way in the second takes the
    second's value either way, at the first's place. With a third piece carrying the key
    again, the spelling written last would decide; such contexts are normalized whole."""
    if len(parts) == 2:
        return parts[0].plain and parts[1].plain
    return len(parts) == 1 and parts[0].plain


@lru_cache(maxsize=4096)
def _lower_key(key: str) -> str:
    return key.lower()


@lru_cache(maxsize=4096)
def _derived(
    principal_arn: str,
    principal_account: str,
    action: str,
    resource: str,
    resource_account: str,
    has_boundary: bool,
) -> tuple[RequestPrincipal, dict[str, str]]:
    """The principal and the keys AWS derives from the request; cached because the
    scanner asks the same few questions for many checks. Callers must not mutate."""
    session_arn = principal_arn if is_assumed_role_arn(principal_arn) else None
    role_arn = session_to_role_arn(principal_arn) or principal_arn
    principal = RequestPrincipal.for_role(
        principal_arn, principal_account, role_arn, session_arn, has_boundary
    )
    derived = {
        "aws:principalarn": role_arn,
        "aws:principalaccount": principal_account,
        "aws:principaltype": "AssumedRole",
        "aws:principalisawsservice": "false",
    }
    if is_user_arn(principal_arn):
        # aws:username "is always included in the request context for IAM users", and
        # their aws:PrincipalType is User (IAM: AWS global condition context keys).
        derived["aws:principaltype"] = "User"
        derived["aws:username"] = role_name(principal_arn)
    region = arn_region(resource)
    if region:
        derived["aws:requestedregion"] = region
    if resource != "*":
        derived["aws:resourceaccount"] = resource_account
    if action.lower().startswith("kms:"):
        derived["kms:calleraccount"] = principal_account
    return principal, derived
