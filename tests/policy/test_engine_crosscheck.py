"""Rules found missing when the engine was cross-checked against another evaluator's
cases, each re-derived from AWS's documentation (the sentence is quoted per group)."""

from __future__ import annotations

from policy_builders import ACCOUNT, ALLOW_ALL, OTHER_ACCOUNT, ROLE, SESSION, decide, policy, stmt

from scanner.policy import Scenario, evaluate

# --- Role trust policies ----------------------------------------------------------------
# "For most resources, you only need an explicit allow for the principal in either an
# identity-based policy or a resource-based policy to grant access. IAM role trust
# policies and KMS key policies are exceptions to this logic, because they must explicitly
# allow access for principals." (IAM: How AWS enforcement code logic evaluates requests)

TARGET_ROLE = f"arn:aws:iam::{ACCOUNT}:role/RestoreOperator"
OTHER_TARGET_ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/RestoreOperator"
ALLOW_ASSUME = policy(stmt(action="sts:AssumeRole", resource=TARGET_ROLE))


def trust(principal: object, effect: str = "Allow", **extra: object) -> dict:
    # Trust policies name no Resource: the statement applies to the role itself.
    statement = {"Effect": effect, "Principal": principal, "Action": "sts:AssumeRole", **extra}
    return {"Version": "2012-10-17", "Statement": [statement]}


def assume(**kwargs: object):
    kwargs.setdefault("action", "sts:AssumeRole")
    kwargs.setdefault("resource", TARGET_ROLE)
    return decide(**kwargs)


def test_identity_allow_without_trust_statement_for_the_caller_is_denied() -> None:
    result = assume(
        identity=[ALLOW_ASSUME],
        resource_policy=trust({"Service": "backup.amazonaws.com"}),
    )
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "resource_policy")
    note = result.layer("resource_policy").note
    assert note is not None and f"arn:aws:iam::{ACCOUNT}:root" in note


def test_identity_allow_without_any_trust_policy_is_denied() -> None:
    result = assume(identity=[ALLOW_ASSUME])
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "resource_policy")


def test_trust_naming_the_account_delegates_to_identity_policies() -> None:
    root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert assume(identity=[ALLOW_ASSUME], resource_policy=trust(root)).decision == "allowed"
    denied = assume(identity=[], resource_policy=trust(root))
    assert (denied.decision, denied.deciding_layer) == ("implicitDeny", "identity")


def test_trust_naming_the_caller_grants_without_identity_policy() -> None:
    result = assume(identity=[], resource_policy=trust({"AWS": ROLE}))
    assert result.decision == "allowed"
    session = assume(principal=SESSION, identity=[], resource_policy=trust({"AWS": ROLE}))
    assert session.decision == "allowed"


def test_trust_deny_denies() -> None:
    result = assume(identity=[ALLOW_ALL], resource_policy=trust({"AWS": ROLE}, effect="Deny"))
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "resource_policy")


def test_trust_condition_is_evaluated() -> None:
    trusted = trust(
        {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        Condition={"StringEquals": {"aws:PrincipalTag/team": "backup"}},
    )
    tagged = assume(
        identity=[ALLOW_ASSUME],
        resource_policy=trusted,
        context={"aws:PrincipalTag/team": "backup"},
    )
    assert tagged.decision == "allowed"
    assert assume(identity=[ALLOW_ASSUME], resource_policy=trusted).decision == "implicitDeny"


def test_trust_statement_with_resource_still_applies() -> None:
    statement = stmt(action="sts:AssumeRole", Principal={"AWS": ROLE})
    assert assume(resource_policy=policy(statement)).decision == "allowed"


def test_cross_account_assume_role_needs_both_sides() -> None:
    other_root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    allow_other = policy(stmt(action="sts:AssumeRole", resource=OTHER_TARGET_ROLE))
    both = assume(
        resource=OTHER_TARGET_ROLE, identity=[allow_other], resource_policy=trust(other_root)
    )
    assert both.decision == "allowed"
    trust_only = assume(resource=OTHER_TARGET_ROLE, resource_policy=trust({"AWS": ROLE}))
    assert (trust_only.decision, trust_only.deciding_layer) == ("implicitDeny", "identity")
    identity_only = assume(resource=OTHER_TARGET_ROLE, identity=[allow_other])
    assert (identity_only.decision, identity_only.deciding_layer) == (
        "implicitDeny",
        "resource_policy",
    )


def test_other_actions_on_a_role_keep_the_same_account_union_rule() -> None:
    # iam:GetRole on the role is an ordinary IAM request: the identity allow suffices.
    result = decide(
        action="iam:GetRole",
        resource=TARGET_ROLE,
        identity=[policy(stmt(action="iam:GetRole"))],
    )
    assert result.decision == "allowed"


def test_trust_policy_round_trips_unchanged() -> None:
    data = {
        "request": {"principal_arn": ROLE, "action": "sts:AssumeRole", "resource": TARGET_ROLE},
        "policies": {"identity": [ALLOW_ASSUME], "resource_policy": trust({"AWS": ROLE})},
    }
    scenario = Scenario.from_dict(data)
    assert scenario.to_dict()["policies"]["resource_policy"] == trust({"AWS": ROLE})
    assert Scenario.from_dict(scenario.to_dict()) == scenario
    assert evaluate(scenario).layer("resource_policy").statements[0].policy == "trust policy"


# --- Actions that need no permission ------------------------------------------------------
# "No permissions are required to perform this operation. If an administrator attaches a
# policy to your identity that explicitly denies access to the sts:GetCallerIdentity
# action, you can still perform this operation." (AWS STS API Reference: GetCallerIdentity)


def test_get_caller_identity_needs_no_permission() -> None:
    result = decide(action="sts:GetCallerIdentity", resource="*", identity=[])
    assert (result.decision, result.deciding_layer) == ("allowed", None)


def test_get_caller_identity_cannot_be_denied() -> None:
    deny = policy(stmt("Deny", action="sts:GetCallerIdentity"))
    result = decide(
        action="sts:GetCallerIdentity",
        resource="*",
        identity=[deny],
        scps=[[deny]],
        boundary=deny,
    )
    assert result.decision == "allowed"
