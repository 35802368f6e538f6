"""Condition operators as a table of small functions, and evaluation of a compiled
`Condition` block (IAM JSON policy elements: Condition operators; Condition; Single-valued
vs. multivalued context keys).

Rules implemented, as documented:
- several values for one key: OR; several keys in one operator, several operators: AND;
- condition key names are case-insensitive, String* values are case-sensitive
  (except the ...IgnoreCase operators);
- a key absent from the request context makes the condition false, except for the
  negated operators (StringNotEquals, ArnNotLike, NotIpAddress, ...) which are then
  true, `...IfExists` which is then true, and `Null`;
- `ForAllValues:` is true when the key is absent or its value is a null data set (an
  empty list or an empty string) and otherwise requires every request value to match;
  `ForAnyValue:` is false in those cases and otherwise requires one request value to
  match; `Null` treats an empty value like an absent key;
- a single-valued operator given a multivalued key does not match (a set qualifier is
  needed for those);
- policy variables are substituted only for String*, Arn* and Bool operators; a variable
  with no value is effectively null, which no value equals or is like, so negated
  operators such as StringNotEquals match it (Variables and tags, "Policy variables
  with no value").
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from scanner.policy.arn import arn_like
from scanner.policy.variables import Context, Part, has_variables, parse_template, resolve
from scanner.policy.wildcard import compile_glob, plain_text

Prepared = Any
Test = Callable[[Prepared, str], bool]
_YEAR_MONTH = re.compile(r"^\d{4}-\d{2}$")


class ConditionValueError(ValueError):
    """A policy value the operator cannot use (a malformed number, date, CIDR, ...)."""


@dataclass(frozen=True)
class Operator:
    name: str
    prepare: Callable[[tuple[str, ...]], Prepared]  # policy values -> fast form
    test: Test  # (prepared, one request value) -> positive match
    negated: bool = False
    variables: bool = False  # policy variables are substituted in its values


# --- value parsers ----------------------------------------------------------------------


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as error:
        raise ConditionValueError(f"{text!r} is not a number") from error


def _date(text: str) -> float:
    """ISO 8601 date/time (UTC when no offset) or epoch seconds, as epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    if _YEAR_MONTH.match(text):
        # W3C's ISO 8601 profile, which the Date operators use, includes YYYY-MM
        # (IAM JSON policy elements: Condition operators, "Date condition operators").
        text += "-01"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise ConditionValueError(f"{text!r} is not an ISO 8601 date or epoch time") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as error:
        raise ConditionValueError(f"{text!r} is not an IP address or CIDR block") from error


def _bool(text: str) -> str:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ConditionValueError(f"{text!r} is not true or false")
    return lowered


def _binary(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ConditionValueError(f"{text!r} is not base64") from error


# --- operator functions -------------------------------------------------------------------


def _string_set(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(plain_text(value) for value in values)


def _string_set_folded(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(plain_text(value).lower() for value in values)


def _globs(values: tuple[str, ...]) -> tuple[Callable[[str], bool], ...]:
    return tuple(compile_glob(value) for value in values)


def _numbers(values: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(_number(value) for value in values)


def _dates(values: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(_date(value) for value in values)


def _compare(parse: Callable[[str], float], check: Callable[[float, float], bool]) -> Test:
    def test(prepared: tuple[float, ...], value: str) -> bool:
        have = parse(value)
        return any(check(have, want) for want in prepared)

    return test


def _in_networks(prepared: tuple[Any, ...], value: str) -> bool:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError as error:
        raise ConditionValueError(f"{value!r} is not an IP address") from error
    return any(address.version == net.version and address in net for net in prepared)


def _arn_any(prepared: tuple[str, ...], value: str) -> bool:
    return any(arn_like(pattern, value) for pattern in prepared)


def _binary_in(prepared: frozenset[bytes], value: str) -> bool:
    return _binary(value) in prepared


def _build_table() -> dict[str, Operator]:
    eq = lambda have, want: have == want  # noqa: E731
    ne_table: list[Operator] = [
        Operator("StringEquals", _string_set, lambda s, v: v in s, variables=True),
        Operator(
            "StringEqualsIgnoreCase",
            _string_set_folded,
            lambda s, v: v.lower() in s,
            variables=True,
        ),
        Operator("StringLike", _globs, lambda ms, v: any(m(v) for m in ms), variables=True),
        Operator("NumericEquals", _numbers, _compare(_number, eq)),
        Operator("NumericLessThan", _numbers, _compare(_number, lambda h, w: h < w)),
        Operator("NumericLessThanEquals", _numbers, _compare(_number, lambda h, w: h <= w)),
        Operator("NumericGreaterThan", _numbers, _compare(_number, lambda h, w: h > w)),
        Operator("NumericGreaterThanEquals", _numbers, _compare(_number, lambda h, w: h >= w)),
        Operator("DateEquals", _dates, _compare(_date, eq)),
        Operator("DateLessThan", _dates, _compare(_date, lambda h, w: h < w)),
        Operator("DateLessThanEquals", _dates, _compare(_date, lambda h, w: h <= w)),
        Operator("DateGreaterThan", _dates, _compare(_date, lambda h, w: h > w)),
        Operator("DateGreaterThanEquals", _dates, _compare(_date, lambda h, w: h >= w)),
        # "You can use a policy variable with the Boolean condition operator" (IAM JSON
        # policy elements: Condition operators, "Boolean condition operators").
        Operator(
            "Bool",
            lambda vs: frozenset(_bool(v) for v in vs),
            lambda s, v: v.lower() in s,
            variables=True,
        ),
        Operator("BinaryEquals", lambda vs: frozenset(_binary(v) for v in vs), _binary_in),
        Operator("IpAddress", lambda vs: tuple(_network(v) for v in vs), _in_networks),
        Operator("ArnEquals", lambda vs: tuple(vs), _arn_any, variables=True),
        Operator("ArnLike", lambda vs: tuple(vs), _arn_any, variables=True),
    ]
    negations = {
        "StringNotEquals": "StringEquals",
        "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
        "StringNotLike": "StringLike",
        "NumericNotEquals": "NumericEquals",
        "DateNotEquals": "DateEquals",
        "NotIpAddress": "IpAddress",
        "ArnNotEquals": "ArnEquals",
        "ArnNotLike": "ArnLike",
    }
    table = {op.name.lower(): op for op in ne_table}
    for name, base in negations.items():
        positive = table[base.lower()]
        table[name.lower()] = Operator(
            name, positive.prepare, positive.test, negated=True, variables=positive.variables
        )
    return table


OPERATORS: dict[str, Operator] = _build_table()
OPERATOR_NAMES = sorted([op.name for op in OPERATORS.values()] + ["Null"])


# --- compiled conditions ----------------------------------------------------------------


@dataclass(frozen=True)
class CompiledCondition:
    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    key: str  # lower-cased context key
    values: tuple[str, ...]
    base: Operator | None  # None for Null
    qualifier: str | None  # "forallvalues" | "foranyvalue" | None
    if_exists: bool
    templates: tuple[tuple[Part, ...], ...] | None  # set when values hold variables
    prepared: Prepared  # prepared values when there are no variables
    # request value -> result, for conditions without variables (their result depends
    # on that one value only); bounded, see condition_matches
    memo: dict[Any, bool] = field(default_factory=dict, compare=False, repr=False)
    written_key: str = ""  # the key as the policy spells it, for explanations

    @property
    def label(self) -> str:
        """`StringEquals kms:ViaService`: how an explanation names this condition."""
        return f"{self.operator} {self.written_key or self.key}"


def parse_operator(text: str) -> tuple[Operator | None, str | None, bool]:
    """(base operator or None for Null, set qualifier, IfExists) or ValueError."""
    rest = text
    qualifier = None
    if ":" in rest:
        prefix, rest = rest.split(":", 1)
        if prefix.lower() not in ("forallvalues", "foranyvalue"):
            raise ValueError(f"unknown set qualifier {prefix!r} (use ForAllValues or ForAnyValue)")
        qualifier = prefix.lower()
    if_exists = rest.lower().endswith("ifexists")
    base_name = rest[: -len("IfExists")] if if_exists else rest
    if base_name.lower() == "null":
        if if_exists or qualifier:
            raise ValueError(f"{text!r}: Null takes no set qualifier or IfExists")
        return None, None, False
    base = OPERATORS.get(base_name.lower())
    if base is None:
        raise ValueError(f"unknown condition operator {text!r}; known: {', '.join(OPERATOR_NAMES)}")
    return base, qualifier, if_exists


def compile_condition(
    operator_text: str, key: str, values: tuple[str, ...], variables_enabled: bool
) -> CompiledCondition:
    """Raises ValueError (unknown operator) or ConditionValueError (bad policy value)."""
    base, qualifier, if_exists = parse_operator(operator_text)
    if base is None:
        for value in values:
            _bool(value)  # Null takes true/false
        return CompiledCondition(
            operator_text, key.lower(), values, None, None, False, None, None, written_key=key
        )
    templates = None
    prepared = None
    if base.variables and variables_enabled and any(has_variables(v) for v in values):
        templates = tuple(parse_template(v) for v in values)
    else:
        prepared = base.prepare(values)
    return CompiledCondition(
        operator_text,
        key.lower(),
        values,
        base,
        qualifier,
        if_exists,
        templates,
        prepared,
        written_key=key,
    )


@lru_cache(maxsize=16384)
def _prepare_resolved(base: Operator, values: tuple[str, ...]) -> Prepared:
    try:
        return base.prepare(values)
    except ConditionValueError:
        # A substituted value the operator cannot read (a Bool variable that resolves to
        # neither true nor false) matches nothing; keep the readable ones.
        return base.prepare(tuple(value for value in values if _readable(base, value)))


def _readable(base: Operator, value: str) -> bool:
    try:
        base.prepare((value,))
    except ConditionValueError:
        return False
    return True


_MEMO_LIMIT = 256
_NULL_VALUES = ("", ())  # request values that form a null data set


def condition_matches(condition: CompiledCondition, context: Context) -> bool:
    if condition.templates is not None:
        return _evaluate(condition, context)
    value = context.get(condition.key)
    memo = condition.memo
    result = memo.get(value)
    if result is None:
        result = _evaluate(condition, context)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[value] = result
    return result


def _evaluate(condition: CompiledCondition, context: Context) -> bool:
    value = context.get(condition.key)
    base = condition.base
    if base is None:  # Null: "true" means the key must be absent
        return _null(condition, value)
    # ForAllValues "also returns true if there are no keys in the request, or if the key
    # values resolve to a null data set, such as an empty string"; ForAnyValue: "for no
    # matching key or a null dataset, the condition returns false" (IAM: Single-valued
    # vs. multivalued context keys).
    if value is None or (condition.qualifier and value in _NULL_VALUES):
        return _absent(condition, base)
    prepared = condition.prepared
    if condition.templates is not None:
        prepared = _resolved(condition, base, context)
    if condition.qualifier is None:
        if not isinstance(value, str):
            return False  # multivalued key needs ForAllValues/ForAnyValue
        return _one(base, prepared, value)
    values = (value,) if isinstance(value, str) else value
    if condition.qualifier == "forallvalues":
        return all(_one(base, prepared, item) for item in values)
    return any(_one(base, prepared, item) for item in values)


def _null(condition: CompiledCondition, value: Any) -> bool:
    # A key whose value is empty counts as null too: "You can prevent missing context
    # keys or context keys with empty values from evaluating to true by including a
    # Null condition operator ... with a value of false" (IAM: Multivalued context key
    # examples).
    want = "true" if value is None or value in _NULL_VALUES else "false"
    return any(policy_value.lower() == want for policy_value in condition.values)


def _absent(condition: CompiledCondition, base: Operator) -> bool:
    """The condition over a key the request lacks (or a null data set)."""
    if condition.qualifier == "forallvalues":
        return True
    if condition.qualifier == "foranyvalue":
        return condition.if_exists
    return condition.if_exists or base.negated


def _resolved(condition: CompiledCondition, base: Operator, context: Context) -> Prepared:
    # A variable without a value makes that policy value effectively null: nothing
    # equals or is like it, so only the negated operators can match it.
    templates = condition.templates or ()
    resolved = tuple(
        text for text in (resolve(template, context) for template in templates) if text is not None
    )
    return _prepare_resolved(base, resolved)


def _one(base: Operator, prepared: Prepared, value: str) -> bool:
    """The operator applied to one request value; a request value the operator cannot
    read (not a number, not an IP) matches neither the operator nor its negation."""
    try:
        positive = base.test(prepared, value)
    except ConditionValueError:
        return False
    return not positive if base.negated else positive
