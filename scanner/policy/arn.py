"""ARN parsing and the ARN comparisons IAM documents.

An ARN has six colon-delimited components: `arn:partition:service:region:account:resource`;
the resource component may itself contain colons. `ArnLike`/`ArnEquals` and the
`Resource` element compare component by component, wildcards matching within a component
(IAM JSON policy elements: Condition operators, "Amazon Resource Name (ARN) condition
operators"; IAM JSON policy elements: Resource).
"""

from __future__ import annotations

import re
from functools import lru_cache

from scanner.policy.wildcard import compile_glob

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ASSUMED_ROLE = re.compile(r"^arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/(.+)$")


def split_arn(value: str) -> tuple[str, str, str, str, str, str] | None:
    """The six components, or None when `value` is not an ARN."""
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])


def arn_region(value: str) -> str | None:
    parts = split_arn(value)
    return parts[3] if parts else None


def arn_account(value: str) -> str | None:
    parts = split_arn(value)
    if parts and _ACCOUNT_ID.match(parts[4]):
        return parts[4]
    return None


def is_account_id(value: str) -> bool:
    return bool(_ACCOUNT_ID.match(value))


def session_to_role_arn(value: str) -> str | None:
    """`arn:aws:sts::ACCT:assumed-role/NAME/SESSION` -> `arn:aws:iam::ACCT:role/NAME`.

    The session ARN carries only the role's name, not its path, so a role with a path
    is named without it here (that is what AWS puts in `aws:PrincipalArn` too).
    """
    match = _ASSUMED_ROLE.match(value)
    if not match:
        return None
    partition, account, name, _session = match.groups()
    return f"arn:{partition}:iam::{account}:role/{name}"


def is_assumed_role_arn(value: str) -> bool:
    return bool(_ASSUMED_ROLE.match(value))


def is_role_arn(value: str) -> bool:
    parts = split_arn(value)
    return bool(parts and parts[2] == "iam" and parts[5].startswith("role/"))


def is_service_linked_role(role_arn: str) -> bool:
    """A service-linked role: its ARN has the path `/aws-service-role/` (IAM: Using
    service-linked roles). A session ARN carries no path, so give the role ARN."""
    parts = split_arn(role_arn)
    return bool(parts and parts[2] == "iam" and parts[5].startswith("role/aws-service-role/"))


def is_user_arn(value: str) -> bool:
    parts = split_arn(value)
    return bool(parts and parts[2] == "iam" and parts[5].startswith("user/"))


def role_name(role_arn: str) -> str:
    """The role's name (last path segment) of a role ARN."""
    return role_arn.rsplit("/", 1)[-1]


@lru_cache(maxsize=65536)
def arn_like(pattern: str, value: str) -> bool:
    """`ArnLike`: both must be ARNs; each of the six components matches separately,
    with `*` and `?` wildcards inside a component (case-sensitive)."""
    if pattern == "*":
        return True
    want = split_arn(pattern)
    have = split_arn(value)
    if want is None or have is None:
        return False
    return all(compile_glob(w)(h) for w, h in zip(want, have, strict=True))


def resource_matches(pattern: str, value: str) -> bool:
    """The `Resource` element: `*` matches anything; an ARN pattern matches component by
    component like `ArnLike`; a pattern that is not a full six-component ARN (for
    example `arn:aws:kms:*`) is matched as a plain glob over the whole string, since a
    trailing `*` can span the remaining components."""
    if pattern == "*":
        return True
    if split_arn(pattern) is None or split_arn(value) is None:
        return compile_glob(pattern)(value)
    return arn_like(pattern, value)
