"""Builders for engine tests: a scenario from a few keyword arguments."""

from __future__ import annotations

from typing import Any

from scanner.policy import Evaluation, Scenario, evaluate

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/BackupOperator"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/BackupOperator/nightly"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VAULT = f"arn:aws:backup:us-west-2:{ACCOUNT}:backup-vault:main"


def stmt(effect: str = "Allow", action: Any = "*", resource: Any = "*", **extra: Any) -> dict:
    out: dict[str, Any] = {"Effect": effect}
    out["NotAction" if extra.pop("not_action", False) else "Action"] = action
    out["NotResource" if extra.pop("not_resource", False) else "Resource"] = resource
    out.update(extra)
    return out


def policy(*statements: dict, version: str | None = "2012-10-17") -> dict:
    out: dict[str, Any] = {"Statement": list(statements)}
    if version:
        out["Version"] = version
    return out


ALLOW_ALL = policy(stmt(Sid="AllowAll"))
ROOT_TRUST = policy(
    stmt(Sid="EnableIAM", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, action="kms:*")
)


def scenario_dict(
    *,
    principal: str = ROLE,
    action: str = "kms:CreateGrant",
    resource: str = KEY,
    context: dict | None = None,
    scps: list | None = None,
    rcps: list | None = None,
    boundary: dict | None = None,
    identity: list | None = None,
    resource_policy: dict | None = None,
    **request_extra: Any,
) -> dict:
    request: dict[str, Any] = {
        "principal_arn": principal,
        "action": action,
        "resource": resource,
        "context": context or {},
    }
    request.update(request_extra)
    return {
        "request": request,
        "policies": {
            "scps": scps or [],
            "rcps": rcps or [],
            "permissions_boundary": boundary,
            "identity": identity or [],
            "resource_policy": resource_policy,
        },
    }


def decide(**kwargs: Any) -> Evaluation:
    return evaluate(Scenario.from_dict(scenario_dict(**kwargs)))
