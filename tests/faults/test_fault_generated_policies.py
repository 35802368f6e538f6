"""Hypothesis-generated policy documents fed to the engine, valid and not: every one gets
an answer or a clear ScenarioError naming the field, never a crash or a hang."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.policy import Scenario, ScenarioError, evaluate

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/BackupOperator"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROOT_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ],
}

DECISIONS = {"allowed", "implicitDeny", "explicitDeny"}

text = st.one_of(
    st.sampled_from(
        [
            "*",
            "kms:*",
            "kms:CreateGrant",
            "kms:?*?*?*?*?*?*?*?*Z",
            KEY,
            "arn:aws:kms:*:*:key/*",
            ROLE,
            "${aws:PrincipalTag/team}",
            "${*}",
            "",
        ]
    ),
    st.text(max_size=30),
)
scalar = st.one_of(text, st.integers(), st.booleans(), st.none(), st.floats(allow_nan=True))
values = st.one_of(scalar, st.lists(scalar, max_size=3))
operators = st.sampled_from(
    [
        "StringLike",
        "StringEquals",
        "ArnLike",
        "ForAnyValue:StringLike",
        "ForAllValues:StringEquals",
        "StringLikeIfExists",
        "Bool",
        "NumericLessThan",
        "DateGreaterThan",
        "IpAddress",
        "Null",
        "NoSuchOperator",
    ]
)
keys = st.sampled_from(
    ["aws:PrincipalArn", "kms:ViaService", "aws:SourceIp", "aws:CurrentTime", "k:x", ""]
)
condition = st.dictionaries(operators, st.dictionaries(keys, values, max_size=2), max_size=2)
statement = st.fixed_dictionaries(
    {"Effect": st.sampled_from(["Allow", "Deny", "allow", "Maybe"])},
    optional={
        "Action": values,
        "NotAction": values,
        "Resource": values,
        "NotResource": values,
        "Principal": st.one_of(
            st.just("*"), st.dictionaries(st.sampled_from(["AWS", "Service"]), values, max_size=2)
        ),
        "Condition": st.one_of(condition, values),
        "Sid": st.one_of(text, st.integers()),
    },
)
document = st.one_of(
    st.fixed_dictionaries(
        {"Statement": st.one_of(st.lists(statement, max_size=4), statement, values)},
        optional={"Version": st.sampled_from(["2012-10-17", "2008-10-17", "2020-01-01"])},
    ),
    values,
)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(identity=st.lists(document, max_size=2), resource=document, action=text)
def test_generated_documents_are_answered_or_refused_clearly(identity, resource, action) -> None:
    data = {
        "request": {"principal_arn": ROLE, "action": action or "kms:CreateGrant", "resource": KEY},
        "policies": {"identity": identity, "resource_policy": resource, "scps": [], "rcps": []},
    }
    try:
        scenario = Scenario.from_dict(data, origin="generated")
    except ScenarioError as error:
        assert error.message  # a reason, naming the field where it can
        return
    assert evaluate(scenario).decision in DECISIONS


@settings(max_examples=100, deadline=2000)
@given(statements=st.lists(statement, min_size=1, max_size=3))
def test_generated_statements_next_to_a_valid_key_policy(statements) -> None:
    data = {
        "request": {"principal_arn": ROLE, "action": "kms:CreateGrant", "resource": KEY},
        "policies": {
            "identity": [{"Version": "2012-10-17", "Statement": statements}],
            "resource_policy": ROOT_TRUST,
        },
    }
    try:
        scenario = Scenario.from_dict(data, origin="generated")
    except ScenarioError as error:
        assert "identity" in str(error) or error.field
        return
    assert evaluate(scenario).decision in DECISIONS
