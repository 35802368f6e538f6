"""Which condition keys a verdict rests on without knowing them.

A statement "turns on" a key when its action and resource match the request, every
condition on keys the context carries matches, and it also has a condition on a key
the context lacks (or whose value only stands for the real one): the statement applies
or not depending on a value vaultscan could not know. Keys absent by AWS's own rules
(aws:username for a role, ...) are not unknown and are not reported.

Conditions on an absent key evaluate the way AWS documents ("If the key that you specify
in a policy condition is not present in the request context, the values do not match",
negated operators and ...IfExists match; IAM JSON policy elements: Condition operators):
that is how the engine evaluated them, and the verdict says which keys it assumed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scanner.policy.conditions import condition_matches
from scanner.policy.context import normalize_value
from scanner.policy.grammar import compile_policy
from scanner.policy.variables import Context


def engine_context(values: dict[str, Any]) -> Context:
    """The context as the engine's condition operators read it (lower-case keys)."""
    return {key.lower(): normalize_value(value) for key, value in values.items()}


def referenced_missing_keys(
    documents: Iterable[dict[str, Any] | None], action: str, resource: str, context: Context
) -> list[str]:
    """Keys read by a condition of a statement whose action and resource match, that the
    context lacks: what AWS's simulator reports as MissingContextValues."""
    missing: dict[str, None] = {}
    for document in documents:
        if not document:
            continue
        for statement in compile_policy(document).candidates(action.lower(), resource, context):
            for condition in statement.conditions:
                if condition.key not in context:
                    missing[condition.key] = None
    return list(missing)


def keys_the_verdict_rests_on(
    documents: Iterable[dict[str, Any] | None],
    action: str,
    resource: str,
    context: Context,
    *,
    representative: frozenset[str] = frozenset(),
    absent_by_rule: Iterable[str] = (),
) -> list[str]:
    """Unknown keys (absent, or present only as a stand-in value) on which a matching
    statement's outcome depends; lower-case, in order of first appearance."""
    known_absent = {key.lower() for key in absent_by_rule}
    stand_ins = {key.lower() for key in representative}
    found: dict[str, None] = {}
    for document in documents:
        if not document:
            continue
        for statement in compile_policy(document).candidates(action.lower(), resource, context):
            unknown = []
            applies = True
            for condition in statement.conditions:
                key = condition.key
                if key in stand_ins or (key not in context and key not in known_absent):
                    unknown.append(key)
                elif not condition_matches(condition, context):
                    applies = False
                    break
            if applies:
                found.update(dict.fromkeys(unknown))
    return list(found)
