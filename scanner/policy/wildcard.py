"""Glob matching as IAM does it: `*` is any run of characters, `?` exactly one.

Matching never backtracks, so a hostile pattern written into one member account's policy
(`key/?*?*?*...Z`) cannot stall a scan. A pattern is split at its `*`s into segments of
literal characters and `?`; the first segment must match at the start of the value, the
last at its end, and each middle segment is placed at its leftmost possible position (for
glob patterns the leftmost placement of each segment is always safe, so no earlier choice
is ever revisited). Segments without `?` are found with `str.find`; short segments with
`?` by a quantifier-free regex (literals and `.`, at most 64 steps per character); longer
ones by a bit-parallel shift-and scan. Each character of the value is scanned once per
segment placement, so for a given pattern matching time is linear in the value's length
(measured in benchmarks/wildcard_bench.py).

Compiled matchers are cached; the common shapes (`*`, no wildcard at all, a single
trailing `*`) skip the segment machinery.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

Matcher = Callable[[str], bool]


# Stand-ins for a literal `*` / `?` (from `${*}`, `${?}` or a substituted value): they
# match only themselves, never act as wildcards. Private-use code points.
LITERAL_STAR = "\ue000"
LITERAL_QUESTION = "\ue001"
_LITERALS = str.maketrans({LITERAL_STAR: "*", LITERAL_QUESTION: "?"})

# Marks the `?` positions of a segment once the literal stand-ins are resolved; a value
# character never compares equal to it, because `?` positions are tested separately.
_ANY = None


def has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def has_literal_marks(text: str) -> bool:
    return LITERAL_STAR in text or LITERAL_QUESTION in text


def plain_text(text: str) -> str:
    """`text` with literal stand-ins turned back into `*` and `?`."""
    return text.translate(_LITERALS) if has_literal_marks(text) else text


def glob_to_regex(pattern: str) -> str:
    """The regular expression (anchored, no flags) equivalent to an IAM glob pattern.

    For display and interoperability only: matching uses `compile_glob`, because a
    backtracking regex engine takes exponential time on patterns like `?*?*?*...Z`.
    """
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


# Segments with `?` up to this length are searched by the regex engine: a regex of
# literals and `.` has no quantifier, so a search costs at most this many steps per value
# character (linear, in C). Longer ones use the bit-parallel scan.
_REGEX_SEGMENT_LIMIT = 64


@dataclass(frozen=True, slots=True)
class _Segment:
    """A run of pattern characters between two `*`: literals and `?` (one char each)."""

    text: str  # the segment with every `?` kept as `?` and stand-ins made literal
    size: int
    wild: bool  # whether the segment holds a `?`
    regex: re.Pattern[str] | None  # literals and `.`, for short segments with `?`
    masks: dict[str, int]  # shift-and masks: bit i set when char may stand at offset i
    any_mask: int  # bits of the `?` offsets (for characters not in `masks`)

    def matches_at(self, value: str, start: int) -> bool:
        """Whether the segment matches `value[start:start + size]` (bounds checked)."""
        if not self.wild:
            return value.startswith(self.text, start)
        if start < 0 or start + self.size > len(value):
            return False
        if self.regex is not None:
            return self.regex.match(value, start) is not None
        return self._scan(value, start, start + self.size) == start

    def find(self, value: str, start: int, stop: int) -> int:
        """The leftmost offset >= start where the segment lies within value[:stop], or -1."""
        if not self.wild:
            return value.find(self.text, start, stop)
        if self.regex is not None:
            found = self.regex.search(value, start, stop)
            return -1 if found is None else found.start()
        return self._scan(value, start, stop)

    def _scan(self, value: str, start: int, stop: int) -> int:
        # Shift-and: bit i of `state` is set when the segment's first i+1 characters
        # match the value ending at the current position.
        masks = self.masks
        any_mask = self.any_mask
        accept = 1 << (self.size - 1)
        state = 0
        for position in range(start, stop):
            state = ((state << 1) | 1) & masks.get(value[position], any_mask)
            if state & accept:
                return position - self.size + 1
        return -1


def _segment(tokens: list[str | None]) -> _Segment:
    """A segment from its tokens: a character, or `_ANY` for `?`."""
    text = "".join("?" if token is _ANY else token for token in tokens)
    wild = [i for i, token in enumerate(tokens) if token is _ANY]
    regex = None
    if wild and len(tokens) <= _REGEX_SEGMENT_LIMIT:
        source = "".join("." if token is _ANY else re.escape(token) for token in tokens)
        regex = re.compile(source, re.DOTALL)
    any_mask = 0
    for i in wild:
        any_mask |= 1 << i
    masks: dict[str, int] = {}
    if wild and regex is None:
        for i, token in enumerate(tokens):
            if token is not _ANY:
                masks[token] = masks.get(token, any_mask) | (1 << i)
    return _Segment(text, len(tokens), bool(wild), regex, masks, any_mask)


def _split(pattern: str) -> list[_Segment]:
    """The segments between the `*`s of `pattern` (empty ones included)."""
    segments: list[_Segment] = []
    tokens: list[str | None] = []
    for char in pattern:
        if char == "*":
            segments.append(_segment(tokens))
            tokens = []
        elif char == "?":
            tokens.append(_ANY)
        elif char == LITERAL_STAR:
            tokens.append("*")
        elif char == LITERAL_QUESTION:
            tokens.append("?")
        else:
            tokens.append(char)
    segments.append(_segment(tokens))
    return segments


def _segments_match(segments: list[_Segment], value: str) -> bool:
    """Anchored glob match; `segments` come from `_split` (one more than the `*`s)."""
    first = segments[0]
    if len(segments) == 1:
        return len(value) == first.size and first.matches_at(value, 0)
    last = segments[-1]
    stop = len(value) - last.size
    if stop < first.size or not first.matches_at(value, 0):
        return False
    if not last.matches_at(value, stop):
        return False
    position = first.size
    for middle in segments[1:-1]:
        found = middle.find(value, position, stop)
        if found < 0:
            return False
        position = found + middle.size
    return True


def _glob_matcher(pattern: str, ignore_case: bool) -> Matcher:
    if ignore_case:
        segments = _split(pattern.lower())
        return lambda value: _segments_match(segments, value.lower())
    segments = _split(pattern)
    return lambda value: _segments_match(segments, value)


@lru_cache(maxsize=65536)
def compile_glob(pattern: str, ignore_case: bool = False) -> Matcher:
    """A predicate telling whether a value matches `pattern`.

    With `ignore_case` the pattern and the value are compared case-insensitively
    (actions); otherwise exactly (ARNs, condition values).
    """
    if pattern == "*":
        return _always
    if has_literal_marks(pattern) or not has_wildcard(pattern):
        literal = plain_text(pattern)
        if not has_wildcard(pattern):
            if ignore_case:
                folded = literal.lower()
                return lambda value: value.lower() == folded
            return literal.__eq__
        return _glob_matcher(pattern, ignore_case)
    body = pattern[:-1]
    if pattern.endswith("*") and not has_wildcard(body):
        if ignore_case:
            folded = body.lower()
            return lambda value: value.lower().startswith(folded)
        return lambda value: value.startswith(body)
    return _glob_matcher(pattern, ignore_case)


def glob_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return compile_glob(pattern, ignore_case)(value)


def _always(_value: str) -> bool:
    return True
