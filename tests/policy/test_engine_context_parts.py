"""A request whose context arrives normalized in pieces (`normalize_context`, as the
scanner builds its contexts from parts several checks share) is the very request built
from the whole context: the same keys, values and order, also when a key is spelled in
different cases in different pieces."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_builders import KEY, ROLE, ROOT_TRUST, policy, scenario_dict, stmt

from scanner.policy import Scenario, evaluate
from scanner.policy.context import build_request, normalize_context

# a few keys, each in several spellings: AWS reads condition keys case-insensitively
KEYS = [
    "aws:RequestedRegion",
    "aws:requestedregion",
    "AWS:REQUESTEDREGION",
    "kms:ViaService",
    "kms:viaservice",
    "aws:PrincipalTag/team",
    "aws:principaltag/Team",
    "aws:PrincipalOrgPaths",
    "aws:SecureTransport",
    "kms:CallerAccount",
]
VALUES = st.one_of(
    st.sampled_from(["eu-west-1", "us-east-1", "backup.eu-west-1.amazonaws.com", ""]),
    st.booleans(),
    st.integers(min_value=0, max_value=10**10),
    st.lists(st.sampled_from(["o-a/r-b/", "o-a/r-c/", "x"]), max_size=3),
)
PIECE = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)


def _request(context, parts=()):
    return build_request(ROLE, "111122223333", "kms:CreateGrant", KEY, "111122223333",
                         context, True, "CUSTOMER", parts)  # fmt: skip


def _merged(*pieces: dict) -> dict:
    out: dict = {}
    for piece in pieces:
        out.update(piece)
    return out


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(PIECE, min_size=1, max_size=3))
def test_pieces_give_the_request_of_the_whole_context(pieces: list[dict]) -> None:
    context = _merged(*pieces)
    whole = _request(context).context
    from_parts = _request(context, tuple(normalize_context(piece) for piece in pieces)).context
    assert list(from_parts.items()) == list(whole.items())


def test_a_key_spelled_twice_in_one_piece_is_normalized_whole() -> None:
    shared = {"aws:RequestedRegion": "eu-west-1", "AWS:requestedRegion": "us-east-1"}
    requested = {"aws:requestedregion": "eu-central-1", "aws:RequestedRegion": "ap-east-1"}
    part = normalize_context(shared)
    assert not part.plain
    context = _merged(shared, requested)
    parts = (part, normalize_context(requested))
    assert _request(context, parts).context == _request(context).context
    # the spelling last in the merged context decides; merging the normalized pieces
    # would have taken the second piece's last spelling (ap-east-1)
    assert _request(context, parts).context["aws:requestedregion"] == "eu-central-1"


def test_scenario_asked_with_parts_answers_as_without() -> None:
    through_backup = {"StringEquals": {"kms:ViaService": "backup.eu-west-1.amazonaws.com"}}
    identity = policy(stmt(action="kms:*", Condition=through_backup))
    base = Scenario.from_dict(scenario_dict(identity=[identity], resource_policy=ROOT_TRUST))
    shared = {"aws:PrincipalTag/team": "backup", "aws:SecureTransport": True}
    requested = {"kms:ViaService": "backup.eu-west-1.amazonaws.com", "kms:CallerAccount": "1"}
    context = _merged(shared, requested)
    asked = {"action": "kms:Decrypt", "resource": KEY, "resource_account": "111122223333"}
    plain = base.with_request(**asked, context=context)
    parts = (normalize_context(shared), normalize_context(requested))
    pieced = base.with_request(**asked, context=context, context_parts=parts)
    assert pieced == plain  # the parts are not part of the scenario's value
    assert list(pieced.request().context.items()) == list(plain.request().context.items())
    assert evaluate(pieced).to_dict() == evaluate(plain).to_dict()
    assert evaluate(pieced).decision == "allowed"  # the condition read the context
    assert pieced.to_dict() == plain.to_dict()
