from __future__ import annotations

from scanner.policy.arn import (
    arn_account,
    arn_like,
    resource_matches,
    session_to_role_arn,
    split_arn,
)


def test_split_keeps_colons_of_the_resource_part() -> None:
    parts = split_arn("arn:aws:logs:us-east-1:111122223333:log-group:name:*")
    assert parts == ("arn", "aws", "logs", "us-east-1", "111122223333", "log-group:name:*")
    assert split_arn("not-an-arn") is None
    assert split_arn("arn:aws:s3") is None


def test_account_only_when_twelve_digits() -> None:
    assert arn_account("arn:aws:iam::111122223333:role/R") == "111122223333"
    assert arn_account("arn:aws:s3:::bucket") is None


def test_session_arn_names_its_role() -> None:
    assert (
        session_to_role_arn("arn:aws:sts::111122223333:assumed-role/Ops/alice")
        == "arn:aws:iam::111122223333:role/Ops"
    )
    assert session_to_role_arn("arn:aws:iam::111122223333:role/Ops") is None


def test_arn_like_compares_component_by_component() -> None:
    # a wildcard in one component does not swallow the colon into the next one
    assert arn_like(
        "arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:us-west-2:111122223333:key/abc"
    )
    assert not arn_like(
        "arn:aws:kms:us-*:111122223333:key/*", "arn:aws:kms:eu-west-1:111122223333:key/abc"
    )
    assert not arn_like(
        "arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:us-west-2:444455556666:key/abc"
    )
    assert arn_like("arn:aws:iam::*:role/Backup?", "arn:aws:iam::111122223333:role/Backup1")


def test_arn_like_is_case_sensitive_and_requires_arns() -> None:
    assert not arn_like(
        "arn:aws:iam::111122223333:role/backup", "arn:aws:iam::111122223333:role/Backup"
    )
    assert not arn_like("arn:aws:iam::111122223333:role/*", "BackupOperator")
    assert arn_like("*", "anything")


def test_resource_short_pattern_with_trailing_star_spans_components() -> None:
    assert resource_matches("arn:aws:kms:*", "arn:aws:kms:us-west-2:111122223333:key/abc")
    assert not resource_matches("arn:aws:s3:*", "arn:aws:kms:us-west-2:111122223333:key/abc")
    assert resource_matches("*", "arn:aws:kms:us-west-2:111122223333:key/abc")
