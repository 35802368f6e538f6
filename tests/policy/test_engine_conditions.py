"""Every condition operator, the IfExists forms, set qualifiers, and missing keys
(IAM JSON policy elements: Condition operators)."""

from __future__ import annotations

import pytest

from scanner.policy.conditions import (
    ConditionValueError,
    compile_condition,
    condition_matches,
)
from scanner.policy.context import normalize_value


def check(operator: str, key: str, values, context: dict, variables: bool = True) -> bool:
    listed = values if isinstance(values, list) else [values]
    compiled = compile_condition(operator, key, tuple(str(v) for v in listed), variables)
    ctx = {k.lower(): normalize_value(v) for k, v in context.items()}
    return condition_matches(compiled, ctx)


@pytest.mark.parametrize(
    ("operator", "policy_value", "request_value", "expected"),
    [
        ("StringEquals", "backup", "backup", True),
        ("StringEquals", "backup", "Backup", False),
        ("StringNotEquals", "backup", "Backup", True),
        ("StringNotEquals", "backup", "backup", False),
        ("StringEqualsIgnoreCase", "BACKUP", "backup", True),
        ("StringNotEqualsIgnoreCase", "BACKUP", "backup", False),
        ("StringNotEqualsIgnoreCase", "BACKUP", "ops", True),
        ("StringLike", "back*", "backup", True),
        ("StringLike", "back?p", "backup", True),
        ("StringLike", "back?", "backup", False),
        ("StringNotLike", "back*", "ops", True),
        ("StringNotLike", "back*", "backup", False),
        ("NumericEquals", "10", "10.0", True),
        ("NumericNotEquals", "10", "11", True),
        ("NumericLessThan", "10", "9", True),
        ("NumericLessThan", "10", "10", False),
        ("NumericLessThanEquals", "10", "10", True),
        ("NumericGreaterThan", "10", "11", True),
        ("NumericGreaterThan", "10", "10", False),
        ("NumericGreaterThanEquals", "10", "10", True),
        ("NumericEquals", "10", "ten", False),
        ("NumericNotEquals", "10", "ten", False),
        ("DateEquals", "2020-01-01T00:00:00Z", "1577836800", True),
        ("DateNotEquals", "2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", True),
        ("DateLessThan", "2020-01-01T00:00:00Z", "2019-12-31T23:59:59Z", True),
        ("DateLessThanEquals", "2020-01-01", "2020-01-01T00:00:00Z", True),
        ("DateGreaterThan", "2020-01-01T00:00:00Z", "2020-01-01T00:00:01+00:00", True),
        ("DateGreaterThanEquals", "2020-01-01T00:00:00Z", "2019-01-01T00:00:00Z", False),
        ("Bool", "true", "true", True),
        ("Bool", "true", "false", False),
        ("Bool", "TRUE", "True", True),
        ("BinaryEquals", "QmluYXJ5VmFsdWU=", "QmluYXJ5VmFsdWU=", True),
        ("BinaryEquals", "QmluYXJ5VmFsdWU=", "T3RoZXI=", False),
        ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
        ("IpAddress", "203.0.113.0/24", "198.51.100.7", False),
        ("IpAddress", "203.0.113.7", "203.0.113.7", True),
        ("IpAddress", "2001:db8::/32", "2001:db8:1::5", True),
        ("IpAddress", "2001:db8::/32", "203.0.113.7", False),
        ("NotIpAddress", "203.0.113.0/24", "198.51.100.7", True),
        ("NotIpAddress", "203.0.113.0/24", "203.0.113.9", False),
        (
            "ArnEquals",
            "arn:aws:iam::111122223333:role/Ops",
            "arn:aws:iam::111122223333:role/Ops",
            True,
        ),
        ("ArnLike", "arn:aws:iam::*:role/Ops*", "arn:aws:iam::111122223333:role/OpsAdmin", True),
        ("ArnLike", "arn:aws:iam::*:role/Ops*", "arn:aws:iam::111122223333:user/OpsAdmin", False),
        (
            "ArnNotEquals",
            "arn:aws:iam::111122223333:role/Ops",
            "arn:aws:iam::111122223333:role/Other",
            True,
        ),
        (
            "ArnNotLike",
            "arn:aws:iam::*:role/Ops*",
            "arn:aws:iam::111122223333:role/OpsAdmin",
            False,
        ),
    ],
)
def test_operator(operator: str, policy_value: str, request_value: str, expected: bool) -> None:
    assert check(operator, "test:Key", policy_value, {"test:Key": request_value}) is expected


def test_several_values_are_ored() -> None:
    assert check("StringEquals", "k:x", ["a", "b"], {"k:x": "b"})
    assert not check("StringEquals", "k:x", ["a", "b"], {"k:x": "c"})
    # the negated form: none of the values may match
    assert not check("StringNotEquals", "k:x", ["a", "b"], {"k:x": "b"})
    assert check("StringNotEquals", "k:x", ["a", "b"], {"k:x": "c"})


def test_condition_key_names_are_case_insensitive_values_are_not() -> None:
    assert check(
        "StringEquals", "AWS:PrincipalTag/Team", "backup", {"aws:principaltag/team": "backup"}
    )
    assert not check(
        "StringEquals", "aws:PrincipalTag/team", "Backup", {"aws:PrincipalTag/team": "backup"}
    )


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("StringEquals", False),
        ("StringLike", False),
        ("NumericLessThan", False),
        ("Bool", False),
        ("IpAddress", False),
        ("ArnLike", False),
        ("StringNotEquals", True),
        ("StringNotLike", True),
        ("NotIpAddress", True),
        ("ArnNotLike", True),
        ("StringEqualsIfExists", True),
        ("NumericLessThanIfExists", True),
        ("BoolIfExists", True),
        ("ArnLikeIfExists", True),
    ],
)
def test_missing_key(operator: str, expected: bool) -> None:
    value = {
        "Numeric": "1",
        "Bool": "true",
        "IpAdd": "10.0.0.0/8",
        "NotIpA": "10.0.0.0/8",
        "ArnLik": "arn:aws:iam::*:role/*",
        "ArnNot": "arn:aws:iam::*:role/*",
    }
    policy_value = next((v for k, v in value.items() if operator.startswith(k)), "x")
    assert check(operator, "k:absent", policy_value, {}) is expected


def test_if_exists_applies_the_operator_when_the_key_is_present() -> None:
    assert check("StringEqualsIfExists", "k:x", "a", {"k:x": "a"})
    assert not check("StringEqualsIfExists", "k:x", "a", {"k:x": "b"})


def test_null_checks_presence() -> None:
    assert check("Null", "k:x", "true", {})
    assert not check("Null", "k:x", "true", {"k:x": "v"})
    assert check("Null", "k:x", "false", {"k:x": "v"})
    assert not check("Null", "k:x", "false", {})


def test_for_all_values() -> None:
    allowed = ["a", "b"]
    assert check("ForAllValues:StringEquals", "k:tags", allowed, {"k:tags": ["a", "b"]})
    assert not check("ForAllValues:StringEquals", "k:tags", allowed, {"k:tags": ["a", "c"]})
    # documented: true when the key is missing or empty
    assert check("ForAllValues:StringEquals", "k:tags", allowed, {})
    assert check("ForAllValues:StringEquals", "k:tags", allowed, {"k:tags": []})
    # negated: every request value must match none of the policy values
    assert check("ForAllValues:StringNotEquals", "k:tags", allowed, {"k:tags": ["c", "d"]})
    assert not check("ForAllValues:StringNotEquals", "k:tags", allowed, {"k:tags": ["c", "a"]})


def test_for_any_value() -> None:
    wanted = ["a", "b"]
    assert check("ForAnyValue:StringEquals", "k:tags", wanted, {"k:tags": ["x", "b"]})
    assert not check("ForAnyValue:StringEquals", "k:tags", wanted, {"k:tags": ["x", "y"]})
    # documented: false when the key is missing
    assert not check("ForAnyValue:StringEquals", "k:tags", wanted, {})
    assert not check("ForAnyValue:StringNotEquals", "k:tags", wanted, {})
    assert check("ForAnyValue:StringEqualsIfExists", "k:tags", wanted, {})
    assert check("ForAnyValue:StringNotEquals", "k:tags", wanted, {"k:tags": ["a", "z"]})
    assert not check("ForAnyValue:StringNotEquals", "k:tags", wanted, {"k:tags": ["a", "b"]})
    # a single value is a set of one
    assert check("ForAnyValue:StringLike", "k:tags", ["b*"], {"k:tags": "bee"})


def test_single_valued_operator_does_not_match_a_multivalued_key() -> None:
    assert not check("StringEquals", "k:tags", "a", {"k:tags": ["a"]})
    assert not check("StringNotEquals", "k:tags", "z", {"k:tags": ["a", "b"]})


def test_policy_variables_in_condition_values() -> None:
    context = {"aws:PrincipalTag/team": "backup", "k:x": "backup-vault"}
    assert check("StringLike", "k:x", "${aws:PrincipalTag/team}-*", context)
    assert not check("StringLike", "k:x", "${aws:PrincipalTag/team}-*", context, variables=False)
    assert check("StringEquals", "k:x", "${aws:PrincipalTag/other, 'backup'}-vault", context)
    # a variable with no value is effectively null: nothing equals it, so only the
    # negated operators match ("Policy variables with no value")
    assert not check("StringEquals", "k:x", "${aws:username}", context)
    assert check("StringNotEquals", "k:x", "${aws:username}", context)
    assert not check("StringLike", "k:x", ["${aws:username}", "nope"], context)
    assert check("StringLike", "k:x", ["${aws:username}", "backup-*"], context)


def test_special_character_variables_are_literal() -> None:
    assert check("StringLike", "k:x", "a${*}b", {"k:x": "a*b"})
    assert not check("StringLike", "k:x", "a${*}b", {"k:x": "axxb"})
    assert check("StringEquals", "k:x", "cost${$}", {"k:x": "cost$"})
    assert check("StringEquals", "k:x", "why${?}", {"k:x": "why?"})


def test_variables_are_not_substituted_for_numeric_operators() -> None:
    with pytest.raises(ConditionValueError):
        compile_condition("NumericEquals", "k:n", ("${aws:PrincipalTag/n}",), True)


def test_unknown_operator_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown condition operator"):
        compile_condition("StringEqualz", "k:x", ("a",), True)
    with pytest.raises(ValueError, match="set qualifier"):
        compile_condition("ForSomeValues:StringEquals", "k:x", ("a",), True)


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("NumericEquals", "ten"),
        ("DateEquals", "yesterday"),
        ("IpAddress", "10.0.0.300/8"),
        ("Bool", "yes"),
        ("BinaryEquals", "***"),
        ("Null", "maybe"),
    ],
)
def test_malformed_policy_values_are_rejected(operator: str, value: str) -> None:
    with pytest.raises(ValueError):
        compile_condition(operator, "k:x", (value,), True)
