"""Requirement profiles: the built-in one, rendering, user files and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.config import load_settings
from scanner.profiles import ProfileError, Requirement, load_profiles, parse_profile

KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_builtin_backup_vault_create_profile() -> None:
    [profile] = load_profiles(load_settings(overrides={}))
    assert profile.name == "backup-vault-create"
    by_action = {r.action: r for r in profile.requirements}
    assert list(by_action) == [
        "backup:CreateBackupVault",
        "backup-storage:MountCapsule",
        "kms:CreateGrant",
        "kms:DescribeKey",
        "kms:RetireGrant",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    ]
    assert [a for a, r in by_action.items() if r.needs_key] == list(by_action)[2:]

    resource, context = by_action["backup:CreateBackupVault"].render(
        "aws", "eu-west-1", "111122223333", KEY
    )
    assert resource == "arn:aws:backup:eu-west-1:111122223333:backup-vault:*"
    assert context == {"aws:RequestedRegion": "eu-west-1"}
    assert by_action["backup-storage:MountCapsule"].render("aws", "eu-west-1", "1", None)[0] == "*"

    resource, context = by_action["kms:CreateGrant"].render(
        "aws-cn", "cn-north-1", "111122223333", KEY
    )
    assert resource == KEY
    assert context == {
        "aws:RequestedRegion": "cn-north-1",
        "kms:ViaService": "backup.cn-north-1.amazonaws.com.cn",
        "kms:CallerAccount": "111122223333",
        "kms:GrantIsForAWSResource": True,
    }
    # only CreateGrant carries kms:GrantIsForAWSResource
    _, decrypt = by_action["kms:Decrypt"].render("aws", "eu-west-1", "111122223333", KEY)
    assert "kms:GrantIsForAWSResource" not in decrypt
    assert decrypt["kms:ViaService"] == "backup.eu-west-1.amazonaws.com"


def test_key_requirement_needs_a_key_to_render() -> None:
    requirement = Requirement("kms:Decrypt", "${KeyArn}", {})
    with pytest.raises(ValueError, match="needs a KMS key ARN"):
        requirement.render("aws", "eu-west-1", "111122223333", None)


def test_user_profile_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "restore.yaml"
    path.write_text(
        """
name: backup-restore
description: Start a restore job
requirements:
  - action: backup:StartRestoreJob
    resource: "arn:${Partition}:backup:${Region}:${Account}:recovery-point:*"
  - action: iam:PassRole
    resource: "arn:${Partition}:iam::${Account}:role/service-role/AWSBackupDefaultServiceRole"
    context: {iam:PassedToService: backup.amazonaws.com, aws:MultiFactorAuthAge: 60}
"""
    )
    settings = load_settings(
        overrides={"profiles": ["backup-vault-create", "backup-restore"], "profile_files": [path]}
    )
    names = [profile.name for profile in load_profiles(settings)]
    assert names == ["backup-vault-create", "backup-restore"]
    restore = load_profiles(settings)[1]
    resource, context = restore.requirements[1].render("aws", "us-east-1", "111122223333")
    assert resource.endswith(":111122223333:role/service-role/AWSBackupDefaultServiceRole")
    assert context == {"iam:PassedToService": "backup.amazonaws.com", "aws:MultiFactorAuthAge": 60}


def test_unknown_profile_name_lists_the_available_ones() -> None:
    settings = load_settings(overrides={"profiles": ["backup-vault-delete"]})
    with pytest.raises(
        ProfileError, match=r"backup-vault-delete.*available: \['backup-vault-create'\]"
    ):
        load_profiles(settings)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected a mapping"),
        ({"name": "Bad Name", "requirements": []}, "name: expected lowercase"),
        ({"name": "p", "requirements": []}, "requirements: expected a non-empty list"),
        (
            {"name": "p", "requirements": [{"action": "CreateBackupVault", "resource": "*"}]},
            r"requirements\[0\].action: expected 'service:Action'",
        ),
        (
            {"name": "p", "requirements": [{"action": "kms:Decrypt", "resource": "${Key}"}]},
            r"requirements\[0\].resource: unknown placeholder\(s\) \['Key'\]",
        ),
        (
            {
                "name": "p",
                "requirements": [
                    {"action": "kms:Decrypt", "resource": "*", "context": {"ViaService": "x"}}
                ],
            },
            "is not a condition key",
        ),
        (
            {
                "name": "p",
                "requirements": [
                    {"action": "kms:Decrypt", "resource": "*", "context": {"kms:X": {"nested": 1}}}
                ],
            },
            r"context.kms:X: expected a string, boolean, number",
        ),
        (
            {"name": "p", "requirements": [{"action": "kms:Decrypt", "resouce": "*"}]},
            r"unknown field\(s\) \['resouce'\]",
        ),
        ({"name": "p", "extra": 1, "requirements": []}, r"unknown field\(s\) \['extra'\]"),
    ],
)
def test_malformed_profiles_are_rejected_with_the_field(document: object, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as caught:
        parse_profile(document, "custom.yaml")
    assert str(caught.value).startswith("custom.yaml")


def test_unreadable_profile_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    settings = load_settings(overrides={"profile_files": [bad]})
    with pytest.raises(ProfileError, match="broken.yaml: not valid YAML"):
        load_profiles(settings)
