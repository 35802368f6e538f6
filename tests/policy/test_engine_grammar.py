"""Policy grammar: statement forms, principal forms, compile cache."""

from __future__ import annotations

import copy
import gc
import weakref

import pytest

from scanner.policy import grammar
from scanner.policy.grammar import PolicyError, compile_policy
from scanner.policy.principal import RequestPrincipal, match_principal, parse_principal

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/BackupOperator"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/BackupOperator/nightly"


def principal(arn: str, session: str | None = None) -> RequestPrincipal:
    return RequestPrincipal.for_role(session or arn, ACCOUNT, arn, session, False)


def test_statement_may_be_an_object_or_a_list() -> None:
    single = compile_policy({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}})
    listed = compile_policy(
        {"Statement": [{"Effect": "Deny", "Action": ["s3:*", "kms:*"], "Resource": ["*"]}]}
    )
    assert [s.effect for s in single.statements] == ["Allow"]
    assert listed.statements[0].matches_action("kms:decrypt")
    assert not listed.statements[0].matches_action("backup:createbackupvault")


def test_compiled_policies_are_cached_by_identity_and_content() -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
    }
    assert compile_policy(document) is compile_policy(document)
    assert compile_policy(document) is compile_policy(dict(document))


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (
            {
                "Statement": [
                    {"Effect": "Allow", "Action": "*", "NotAction": "s3:*", "Resource": "*"}
                ]
            },
            "Statement[0].NotAction",
        ),
        (
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "*",
                        "Principal": "*",
                        "NotPrincipal": {"AWS": "*"},
                    }
                ]
            },
            "Statement[0].NotPrincipal",
        ),
        (
            {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Efect": "x"}]},
            "Statement[0].Efect",
        ),
        (
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"StringEquals": "x"},
                    }
                ]
            },
            "Statement[0].Condition.StringEquals",
        ),
        (
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"StringEquals": {"k:x": {"a": 1}}},
                    }
                ]
            },
            "Statement[0].Condition.StringEquals.k:x",
        ),
        ({"Statement": "x"}, "Statement"),
        ({"Version": "2012-10-17"}, "Statement"),
        ({"Statement": [], "Extra": 1}, "Extra"),
    ],
)
def test_grammar_errors_point_into_the_document(document: dict, path: str) -> None:
    with pytest.raises(PolicyError) as caught:
        compile_policy(document)
    assert caught.value.path == path


@pytest.mark.parametrize(
    ("element", "request_principal", "kind"),
    [
        ("*", principal(ROLE), "wildcard"),
        ({"AWS": "*"}, principal(ROLE), "wildcard"),
        ({"AWS": ACCOUNT}, principal(ROLE), "account"),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, principal(ROLE), "account"),
        ({"AWS": ROLE}, principal(ROLE), "role"),
        ({"AWS": ROLE}, principal(ROLE, SESSION), "role"),
        (
            {"AWS": f"arn:aws:iam::{ACCOUNT}:role/team/BackupOperator"},
            principal(ROLE, SESSION),
            "role",
        ),
        ({"AWS": SESSION}, principal(ROLE, SESSION), "session"),
        ({"AWS": SESSION}, principal(ROLE), None),
        ({"AWS": ["444455556666", ROLE]}, principal(ROLE), "role"),
        ({"AWS": "444455556666"}, principal(ROLE), None),
        ({"Service": "backup.amazonaws.com"}, principal(ROLE), None),
        ({"Federated": "cognito-identity.amazonaws.com"}, principal(ROLE), None),
        # an IAM user is matched by its exact ARN only, never as a role of the same name
        (
            {"AWS": f"arn:aws:iam::{ACCOUNT}:user/bob"},
            principal(f"arn:aws:iam::{ACCOUNT}:user/bob"),
            "session",
        ),
        (
            {"AWS": f"arn:aws:iam::{ACCOUNT}:role/bob"},
            principal(f"arn:aws:iam::{ACCOUNT}:user/bob"),
            None,
        ),
    ],
)
def test_principal_forms(
    element: object, request_principal: RequestPrincipal, kind: str | None
) -> None:
    assert match_principal(parse_principal(element), request_principal) == kind


@pytest.mark.parametrize("element", ["arn", {"IAM": ROLE}, {"AWS": []}, {"AWS": "bob"}, {}])
def test_malformed_principals(element: object) -> None:
    with pytest.raises(ValueError):
        parse_principal(element)


def _document(name: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Sid": name, "Effect": "Allow", "Action": "kms:*", "Resource": "*"}],
    }


def test_compiled_policies_kept_are_bounded_and_shared_ones_stay() -> None:
    # A scan of many accounts compiles far more documents than it needs at once: the
    # caches must not keep every finished account's documents, but the documents every
    # account shares (a new copy of each in every account) must stay compiled.
    shared = _document("shared")
    compiled_shared = compile_policy(shared)
    forgotten = compile_policy(_document("forgotten"))
    for index in range(2 * grammar.COMPILED_LIMIT):
        compile_policy(_document(f"account-{index}"))
        if index % 100 == 0:
            assert compile_policy(copy.deepcopy(shared)) is compiled_shared
    assert len(grammar._by_content) <= grammar.COMPILED_LIMIT
    assert len(grammar._by_identity) <= grammar.COMPILED_LIMIT
    assert compile_policy(copy.deepcopy(shared)) is compiled_shared
    again = compile_policy(_document("forgotten"))
    assert again is not forgotten  # evicted, compiled afresh: the same statements
    assert again.statements == forgotten.statements


def test_principal_check_does_not_keep_compiled_policies_alive() -> None:
    # Identity policies are checked for a Principal element once per compiled policy; the
    # answer is remembered, but must not keep every finished account's policy in memory.
    from scanner.policy import scenario

    with_principal = {
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "kms:*", "Resource": "*"},
        ]
    }
    policy = grammar._compile(with_principal)  # not in the compile caches
    statement = scenario._first_principal_statement(policy)
    assert statement is not None and statement.index == 1
    assert scenario._first_principal_statement(policy) is statement
    gone = weakref.ref(policy)
    del policy, statement
    gc.collect()
    assert gone() is None
