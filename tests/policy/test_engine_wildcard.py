from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scanner.policy.wildcard import LITERAL_QUESTION, LITERAL_STAR, glob_match, plain_text


def reference_match(pattern: str, value: str) -> bool:
    """Straightforward recursive glob matcher used as the oracle (literal stand-ins match
    only the character they stand for)."""
    if not pattern:
        return not value
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        return any(reference_match(rest, value[i:]) for i in range(len(value) + 1))
    if not value:
        return False
    if head == "?" or plain_text(head) == value[0]:
        return reference_match(rest, value[1:])
    return False


alphabet = st.sampled_from("ab:/*?.-")
patterns = st.text(alphabet=alphabet, max_size=8)
values = st.text(alphabet=st.sampled_from("ab:/.-*?"), max_size=10)


@given(patterns, values)
def test_glob_agrees_with_reference_matcher(pattern: str, value: str) -> None:
    assert glob_match(pattern, value) == reference_match(pattern, value)


# Wildcard-heavy patterns with stand-ins against longer values: exercises the segment
# search (leftmost placement, shift-and for segments with `?`, the anchored last segment).
dense_patterns = st.text(
    alphabet=st.sampled_from(f"ab*?*?{LITERAL_STAR}{LITERAL_QUESTION}"), max_size=14
)
dense_values = st.text(alphabet=st.sampled_from("aab*?"), max_size=24)


@given(dense_patterns, dense_values)
def test_wildcard_heavy_patterns_agree_with_reference(pattern: str, value: str) -> None:
    assert glob_match(pattern, value) == reference_match(pattern, value)


@given(st.text(alphabet=st.sampled_from("ab?"), min_size=1, max_size=70), dense_values)
def test_long_question_segments_agree_with_reference(segment: str, value: str) -> None:
    # segments longer than a machine word take the multi-word shift-and path
    pattern = f"*{segment}*"
    assert glob_match(pattern, value * 4) == reference_match(pattern, value * 4)


@given(patterns, values)
def test_ignore_case_is_matching_of_lowered_text(pattern: str, value: str) -> None:
    upper = value.upper()
    assert glob_match(pattern, upper, ignore_case=True) == reference_match(pattern, value)


def test_question_mark_is_exactly_one_character() -> None:
    assert glob_match("kms:?ecrypt", "kms:Decrypt")
    assert not glob_match("kms:?ecrypt", "kms:ecrypt")
    assert not glob_match("kms:?ecrypt", "kms:XXecrypt")


def test_star_spans_any_characters_including_colons_and_slashes() -> None:
    assert glob_match("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c")
    assert glob_match("*", "")


def test_matching_is_case_sensitive_unless_asked() -> None:
    assert not glob_match("kms:decrypt", "kms:Decrypt")
    assert glob_match("kms:decrypt", "kms:Decrypt", ignore_case=True)
    assert glob_match("KMS:Create*", "kms:creategrant", ignore_case=True)


def test_literal_star_marker_only_matches_a_star() -> None:
    pattern = f"a{LITERAL_STAR}b"
    assert glob_match(pattern, "a*b")
    assert not glob_match(pattern, "axb")


def test_hostile_pattern_fails_fast_on_long_value() -> None:
    # a backtracking matcher needs minutes for this; the segment matcher answers at once
    assert not glob_match("?*" * 2000 + "Z", "a" * 20000)
    assert glob_match("?*" * 2000 + "Z", "a" * 20000 + "Z")
