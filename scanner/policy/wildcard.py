"""Glob matching as IAM does it: `*` is any run of characters, `?` exactly one.

Patterns are translated once into compiled regular expressions and cached; the common
shapes (`*`, no wildcard at all, a single trailing `*`) skip the regex engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

Matcher = Callable[[str], bool]


# Stand-ins for a literal `*` / `?` (from `${*}`, `${?}` or a substituted value): they
# match only themselves, never act as wildcards. Private-use code points.
LITERAL_STAR = "\ue000"
LITERAL_QUESTION = "\ue001"
_LITERALS = str.maketrans({LITERAL_STAR: "*", LITERAL_QUESTION: "?"})


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def has_literal_marks(text: str) -> bool:
    return LITERAL_STAR in text or LITERAL_QUESTION in text


def plain_text(text: str) -> str:
    """`text` with literal stand-ins turned back into `*` and `?`."""
    return text.translate(_LITERALS) if has_literal_marks(text) else text


def glob_to_regex(pattern: str) -> str:
    """The regular expression (anchored, no flags) equivalent to an IAM glob pattern."""
    parts: list[str] = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == LITERAL_STAR:
            parts.append(re.escape("*"))
        elif char == LITERAL_QUESTION:
            parts.append(re.escape("?"))
        else:
            parts.append(re.escape(char))
    return "".join(parts)


@lru_cache(maxsize=65536)
def compile_glob(pattern: str, ignore_case: bool = False) -> Matcher:
    """A predicate telling whether a value matches `pattern`.

    With `ignore_case` the pattern and the value are compared case-insensitively
    (actions); otherwise exactly (ARNs, condition values).
    """
    if pattern == "*":
        return _always
    if has_literal_marks(pattern):
        flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        compiled_marks = re.compile(glob_to_regex(pattern), flags)
        return lambda value: compiled_marks.fullmatch(value) is not None
    if not has_wildcard(pattern):
        if ignore_case:
            folded = pattern.lower()
            return lambda value: value.lower() == folded
        return pattern.__eq__
    body = pattern[:-1]
    if pattern.endswith("*") and not has_wildcard(body):
        if ignore_case:
            folded = body.lower()
            return lambda value: value.lower().startswith(folded)
        return lambda value: value.startswith(body)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    compiled = re.compile(glob_to_regex(pattern), flags)
    return lambda value: compiled.fullmatch(value) is not None


def glob_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return compile_glob(pattern, ignore_case)(value)


def _always(_value: str) -> bool:
    return True
