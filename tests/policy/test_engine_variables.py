from __future__ import annotations

from scanner.policy.variables import Variable, parse_template, resolve
from scanner.policy.wildcard import LITERAL_QUESTION, LITERAL_STAR


def test_parse_variables_defaults_and_specials() -> None:
    parts = parse_template("home/${aws:PrincipalTag/Team}/${aws:username, 'anon'}/${*}${?}${$}")
    assert parts == (
        "home/",
        Variable("aws:principaltag/team", None),
        "/",
        Variable("aws:username", "anon"),
        "/",
        LITERAL_STAR,
        LITERAL_QUESTION,
        "$",
    )


def test_resolve_uses_context_then_default() -> None:
    parts = parse_template("${aws:PrincipalTag/team, 'none'}-${k:x}")
    assert resolve(parts, {"aws:principaltag/team": "backup", "k:x": "1"}) == "backup-1"
    assert resolve(parts, {"k:x": "1"}) == "none-1"
    assert resolve(parts, {}) is None  # k:x has no default


def test_multivalued_keys_cannot_be_substituted() -> None:
    assert resolve(parse_template("${aws:TagKeys}"), {"aws:tagkeys": ("a", "b")}) is None


def test_substituted_wildcards_are_literal() -> None:
    resolved = resolve(parse_template("${k:x}"), {"k:x": "a*b"})
    assert resolved == f"a{LITERAL_STAR}b"


def test_doubled_quote_in_default() -> None:
    assert resolve(parse_template("${k:x, 'it''s'}"), {}) == "it's"
