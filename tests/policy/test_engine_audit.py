"""Rules checked against the AWS documentation: service-linked roles and SCPs, the RCP
before SCP order of the enforcement flow, null data sets in set operators and `Null`,
the request context of IAM users, W3C dates, policy variables in `Bool`, and the
`vaultscan explain` error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from policy_builders import (
    ACCOUNT,
    ALLOW_ALL,
    KEY,
    ROOT_TRUST,
    VAULT,
    decide,
    policy,
    scenario_dict,
    stmt,
)

from scanner.cli import main
from scanner.policy import Scenario, evaluate

SERVICE_LINKED_ROLE = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/backup.amazonaws.com/AWSServiceRoleForBackup"
)
FULL = policy(stmt(Sid="FullAWSAccess"))
RCP_FULL = policy(stmt(Sid="RCPFullAWSAccess", Principal="*"))


# --- "SCPs do not affect any service-linked role" (Organizations: SCPs) ------------------


def test_scp_deny_does_not_affect_service_linked_role() -> None:
    result = decide(
        principal=SERVICE_LINKED_ROLE,
        action="kms:DescribeKey",
        scps=[[FULL, policy(stmt("Deny", "kms:*"))]],
        identity=[ALLOW_ALL],
        resource_policy=ROOT_TRUST,
    )
    assert (result.decision, result.deciding_layer) == ("allowed", None)
    scp = result.layer("scp")
    assert scp is not None and "service-linked" in (scp.note or "")


def test_scp_allow_list_does_not_affect_service_linked_role() -> None:
    result = decide(
        principal=SERVICE_LINKED_ROLE,
        action="backup:CreateBackupVault",
        resource=VAULT,
        scps=[[FULL], [policy(stmt(action="s3:*"))]],
        identity=[ALLOW_ALL],
    )
    assert result.decision == "allowed"


def test_scp_still_applies_to_ordinary_role() -> None:
    result = decide(
        principal=f"arn:aws:iam::{ACCOUNT}:role/service-role/BackupRole",
        action="backup:CreateBackupVault",
        resource=VAULT,
        scps=[[FULL, policy(stmt("Deny", "backup:*"))]],
        identity=[ALLOW_ALL],
    )
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "scp")


# --- the enforcement flow evaluates RCPs, then SCPs (IAM: policy-eval-denyallow) ----------


def test_rcp_decides_before_scp_when_neither_allows() -> None:
    result = decide(
        action="kms:Decrypt",
        scps=[[FULL], [policy(stmt(action="backup:*"))]],
        rcps=[[RCP_FULL], []],
        identity=[ALLOW_ALL],
        resource_policy=ROOT_TRUST,
    )
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "rcp")


def test_explicit_scp_deny_still_decides_over_rcp_implicit_deny() -> None:
    result = decide(
        action="kms:Decrypt",
        scps=[[FULL, policy(stmt("Deny", "kms:Decrypt"))]],
        rcps=[[]],
        identity=[ALLOW_ALL],
        resource_policy=ROOT_TRUST,
    )
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "scp")


# --- null data sets (IAM: single-valued vs multivalued context keys) ----------------------


def _tag_keys_allow(operator: str) -> dict:
    return policy(
        stmt(action="backup:CreateBackupVault", Condition={operator: {"aws:TagKeys": ["a"]}})
    )


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("ForAllValues:StringEquals", "", "allowed"),  # "resolve to a null data set"
        ("ForAllValues:StringEquals", [], "allowed"),
        ("ForAllValues:StringEquals", ["a"], "allowed"),
        ("ForAllValues:StringEquals", ["a", "b"], "implicitDeny"),
        ("ForAnyValue:StringEquals", "", "implicitDeny"),  # "a null dataset ... false"
        ("ForAnyValue:StringEquals", [], "implicitDeny"),
        ("ForAnyValue:StringEquals", ["b", "a"], "allowed"),
    ],
)
def test_set_operators_with_null_data_sets(operator: str, value: object, expected: str) -> None:
    result = decide(
        action="backup:CreateBackupVault",
        resource=VAULT,
        context={"aws:TagKeys": value},
        identity=[_tag_keys_allow(operator)],
    )
    assert result.decision == expected


@pytest.mark.parametrize(
    ("value", "null_true_matches"),
    [(None, True), ([], True), ("", True), (["a"], False), ("x", False)],
)
def test_null_treats_empty_values_as_null(value: object, null_true_matches: bool) -> None:
    context = {} if value is None else {"aws:TagKeys": value}
    for want, matches in (("true", null_true_matches), ("false", not null_true_matches)):
        allow = policy(
            stmt(action="backup:CreateBackupVault", Condition={"Null": {"aws:TagKeys": want}})
        )
        result = decide(
            action="backup:CreateBackupVault", resource=VAULT, context=context, identity=[allow]
        )
        assert (result.decision == "allowed") is matches, (value, want)


# --- IAM users: aws:username and aws:PrincipalType (IAM: global condition keys) -----------


def test_username_variable_resolves_for_iam_user() -> None:
    user = f"arn:aws:iam::{ACCOUNT}:user/division/alice"
    own = f"arn:aws:backup:us-west-2:{ACCOUNT}:backup-vault:alice"
    allow = policy(
        stmt(
            action="backup:CreateBackupVault",
            resource=f"arn:aws:backup:us-west-2:{ACCOUNT}:backup-vault:${{aws:username}}",
            Condition={"StringEquals": {"aws:PrincipalType": "User"}},
        )
    )
    mine = decide(principal=user, action="backup:CreateBackupVault", resource=own, identity=[allow])
    assert mine.decision == "allowed"
    other = decide(
        principal=user, action="backup:CreateBackupVault", resource=VAULT, identity=[allow]
    )
    assert other.decision == "implicitDeny"


def test_username_still_absent_for_role() -> None:
    allow = policy(
        stmt(action="backup:CreateBackupVault", Condition={"Null": {"aws:username": "true"}})
    )
    result = decide(action="backup:CreateBackupVault", resource=VAULT, identity=[allow])
    assert result.decision == "allowed"


# --- conditions: W3C dates, Bool with a variable (IAM: Condition operators) ---------------


def test_date_accepts_w3c_year_month() -> None:
    allow = policy(
        stmt(
            action="kms:Decrypt",
            Condition={"DateGreaterThanEquals": {"aws:CurrentTime": "2024-06"}},
        )
    )
    for now, expected in (
        ("2024-06-01T00:00:00Z", "allowed"),
        ("2024-05-31T23:59:59Z", "implicitDeny"),
    ):
        result = decide(
            action="kms:Decrypt",
            context={"aws:CurrentTime": now},
            identity=[allow],
            resource_policy=ROOT_TRUST,
        )
        assert result.decision == expected, now


def test_bool_accepts_a_policy_variable() -> None:
    allow = policy(
        stmt(
            action="backup:CreateBackupVault",
            Condition={"Bool": {"aws:SecureTransport": "${aws:PrincipalTag/require-tls}"}},
        )
    )
    for tag, expected in (
        ("true", "allowed"),
        ("false", "implicitDeny"),
        ("maybe", "implicitDeny"),
    ):
        result = decide(
            action="backup:CreateBackupVault",
            resource=VAULT,
            context={"aws:SecureTransport": True, "aws:PrincipalTag/require-tls": tag},
            identity=[allow],
        )
        assert result.decision == expected, tag


def test_bool_literal_values_are_still_validated() -> None:
    from scanner.policy import ScenarioError

    bad = policy(stmt(Condition={"Bool": {"aws:SecureTransport": "yes"}}))
    with pytest.raises(ScenarioError) as error:
        Scenario.from_dict(scenario_dict(identity=[bad]))
    assert "Condition.Bool.aws:SecureTransport" in error.value.field


# --- scenario input: null layers are absent layers ----------------------------------------


def test_null_layer_lists_mean_absent() -> None:
    data = scenario_dict(identity=[ALLOW_ALL], resource_policy=ROOT_TRUST)
    data["policies"].update(scps=None, rcps=None)
    result = evaluate(Scenario.from_dict(data))
    assert result.decision == "allowed"
    data["policies"]["identity"] = None
    assert evaluate(Scenario.from_dict(data)).deciding_layer == "identity"


# --- explain: an error without a field reads cleanly ----------------------------------------


def test_unreadable_file_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(scenario_dict(identity=[ALLOW_ALL], resource_policy=ROOT_TRUST)))
    code = main(["explain", str(broken), str(good)])
    captured = capsys.readouterr()
    assert code == 2
    assert f"{broken}: cannot read scenario: invalid JSON" in captured.err
    assert "::" not in captured.err
    assert "decision: allowed" in captured.out
    assert KEY in captured.out
