"""Property: adding an explicit Deny statement to any layer never turns a deny into an
allow, and never turns an explicit deny into anything else."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_builders import ACCOUNT, KEY, OTHER_ACCOUNT, ROLE, SESSION, VAULT

from scanner.policy import Scenario, evaluate

ACTIONS = [
    "kms:CreateGrant",
    "kms:DescribeKey",
    "kms:RetireGrant",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "backup:CreateBackupVault",
    "backup-storage:MountCapsule",
]
FOREIGN_KEY = KEY.replace(ACCOUNT, OTHER_ACCOUNT)
RESOURCES = [KEY, FOREIGN_KEY, VAULT, "*"]

action_patterns = st.sampled_from(
    [
        "*",
        "kms:*",
        "kms:Create*",
        "kms:Decrypt",
        "backup:*",
        "backup-storage:MountCapsule",
        "s3:*",
        "kms:?etireGrant",
    ]
)
resource_patterns = st.sampled_from(
    ["*", KEY, "arn:aws:kms:*:*:key/*", VAULT, "arn:aws:backup:*", FOREIGN_KEY]
)
principals = st.sampled_from(
    [
        "*",
        {"AWS": "*"},
        {"AWS": ROLE},
        {"AWS": SESSION},
        {"AWS": ACCOUNT},
        {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
        {"Service": "backup.amazonaws.com"},
    ]
)
conditions = st.sampled_from(
    [
        None,
        None,
        None,
        {"StringEquals": {"aws:PrincipalTag/team": "backup"}},
        {"StringNotEquals": {"aws:PrincipalTag/team": "backup"}},
        {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        {"ForAnyValue:StringLike": {"aws:TagKeys": ["env*"]}},
        {"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}},
        {"Null": {"aws:PrincipalTag/team": "true"}},
    ]
)


@st.composite
def statements(draw: Any, resource_based: bool, effect: Any = None) -> dict:
    out: dict[str, Any] = {
        "Effect": effect or draw(st.sampled_from(["Allow", "Allow", "Deny"])),
        "Action": draw(action_patterns),
        "Resource": draw(resource_patterns),
    }
    if resource_based and out["Effect"] == "Deny" and draw(st.booleans()):
        out["NotPrincipal"] = draw(principals.filter(lambda p: p != "*"))
    elif resource_based:
        out["Principal"] = draw(principals)
    condition = draw(conditions)
    if condition:
        out["Condition"] = condition
    return out


@st.composite
def documents(draw: Any, resource_based: bool = False) -> dict:
    """Mostly permissive documents, so that allowed answers are common enough for a
    Deny to have something to take away."""
    items = draw(st.lists(statements(resource_based), min_size=0, max_size=3))
    if not items or draw(st.integers(0, 9)) < 7:
        broad: dict[str, Any] = {"Effect": "Allow", "Action": "*", "Resource": "*"}
        if resource_based:
            broad["Principal"] = draw(st.sampled_from(["*", {"AWS": ROLE}, {"AWS": ACCOUNT}]))
        items.insert(0, broad)
    return {"Version": "2012-10-17", "Statement": items}


def org_path(resource_based: bool) -> Any:
    return st.lists(
        st.lists(documents(resource_based), min_size=1, max_size=2), min_size=0, max_size=3
    )


@st.composite
def scenarios(draw: Any) -> dict:
    return {
        "request": {
            "principal_arn": draw(st.sampled_from([ROLE, SESSION])),
            "action": draw(st.sampled_from(ACTIONS)),
            "resource": draw(st.sampled_from(RESOURCES)),
            "context": draw(
                st.sampled_from(
                    [
                        {},
                        {"aws:PrincipalTag/team": "backup"},
                        {"aws:TagKeys": ["env", "owner"]},
                        {"kms:GrantIsForAWSResource": True},
                    ]
                )
            ),
        },
        "policies": {
            "scps": draw(org_path(False)),
            "rcps": draw(org_path(True)),
            "permissions_boundary": draw(st.none() | documents()),
            "identity": draw(st.lists(documents(), max_size=3)),
            "resource_policy": draw(st.none() | documents(True)),
        },
    }


def targets(data: dict) -> list[tuple[list[dict], bool]]:
    """Every statement list a Deny can be added to, and whether it is resource-based."""
    policies = data["policies"]
    out: list[tuple[list[dict], bool]] = []
    for kind, resource_based in (("scps", False), ("rcps", True)):
        for level in policies[kind]:
            out.extend((doc["Statement"], resource_based) for doc in level)
    for key, resource_based in (("permissions_boundary", False), ("resource_policy", True)):
        if policies[key] is not None:
            out.append((policies[key]["Statement"], resource_based))
    out.extend((doc["Statement"], False) for doc in policies["identity"])
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.data())
def test_adding_a_deny_never_loosens(data: dict, draw: st.DataObject) -> None:
    before = evaluate(Scenario.from_dict(data)).decision
    changed = copy.deepcopy(data)
    places = targets(changed)
    if places:
        where, resource_based = draw.draw(st.sampled_from(places))
        where.append(draw.draw(statements(resource_based, effect="Deny")))
    else:
        deny = {"Version": "2012-10-17", "Statement": [draw.draw(statements(False, effect="Deny"))]}
        changed["policies"]["identity"].append(deny)
    after = evaluate(Scenario.from_dict(changed)).decision
    if before != "allowed":
        assert after != "allowed"
    if before == "explicitDeny":
        assert after == "explicitDeny"


@settings(max_examples=50, deadline=None)
@given(scenarios())
def test_scenarios_round_trip(data: dict) -> None:
    scenario = Scenario.from_dict(data)
    again = Scenario.from_dict(scenario.to_dict())
    assert again == scenario
    assert evaluate(again).to_dict() == evaluate(scenario).to_dict()
