"""Policy variables: `${aws:username}`, `${aws:PrincipalTag/team}`, `${key, 'default'}`
and the special characters `${*}`, `${?}`, `${$}` (IAM policy elements: Variables and tags).

Variables are only recognised in policies with `"Version": "2012-10-17"`; in older
policies the text is literal. A variable whose key is absent (or multivalued) and has no
default has no value: it is effectively null, so a `Resource` holding it matches nothing,
and in a condition only negated operators match it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner.policy.wildcard import LITERAL_QUESTION, LITERAL_STAR

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_WITH_DEFAULT = re.compile(r"^\s*([^,\s]+)\s*,\s*'((?:[^']|'')*)'\s*$")
_SPECIAL = {"*": LITERAL_STAR, "?": LITERAL_QUESTION, "$": "$"}

Context = dict[str, "str | tuple[str, ...]"]


@dataclass(frozen=True)
class Variable:
    key: str  # lower-cased: key names are case-insensitive
    default: str | None


Part = str | Variable


def has_variables(text: str) -> bool:
    return "${" in text


def parse_template(text: str) -> tuple[Part, ...]:
    """Split `text` into literal runs and variables; special characters become literals."""
    parts: list[Part] = []
    position = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        inner = match.group(1)
        if inner in _SPECIAL:
            parts.append(_SPECIAL[inner])
        else:
            with_default = _WITH_DEFAULT.match(inner)
            if with_default:
                default = with_default.group(2).replace("''", "'")
                parts.append(Variable(with_default.group(1).lower(), _escape(default)))
            else:
                parts.append(Variable(inner.strip().lower(), None))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def resolve(parts: tuple[Part, ...], context: Context) -> str | None:
    """The text with every variable replaced by its context value, or None when one
    cannot be resolved. Substituted values are literal: a `*` in a tag value is not a
    wildcard."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = context.get(part.key)
        if isinstance(value, str):
            out.append(_escape(value))
        elif part.default is not None:
            out.append(part.default)
        else:
            return None
    return "".join(out)


def _escape(value: str) -> str:
    return value.replace("*", LITERAL_STAR).replace("?", LITERAL_QUESTION)
