"""Keys under moto: the ordered fallback of keys.default, keys owned by another account of
the organization (read once through the owner), keys outside the organization, and a
tag-designated role selector."""

from __future__ import annotations

import json

from aws_helpers import AllowAllSimulator, MotoOrg, policy

from scanner.aws.collect import collect_account
from scanner.aws.keys import UNREADABLE
from scanner.aws.organizations import discover
from scanner.aws.session import AwsSessions
from scanner.config import load_settings
from scanner.profiles import load_profiles

TRUST = json.dumps({"Version": "2012-10-17", "Statement": []})
FALLBACK = ["alias/vault-key", "alias/aws/backup"]


def _role(inside, name: str = "BackupOperator", tags: list[dict] | None = None) -> None:
    iam = inside.client("iam")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST, Tags=tags or [])
    iam.put_role_policy(
        RoleName=name,
        PolicyName="vaults",
        PolicyDocument=policy({"Effect": "Allow", "Action": "*", "Resource": "*"}),
    )


def _collect_all(org: MotoOrg, settings, account_ids: list[str]):
    sessions = AwsSessions(settings, session=org.session)
    organization = discover(sessions, settings)
    profiles = load_profiles(settings)
    out = {}
    for account in organization.accounts:
        if account.id in account_ids:
            out[account.id] = collect_account(
                sessions, settings, profiles, account, organization, AllowAllSimulator()
            )
    return out, sessions, organization


def test_first_existing_key_of_the_list_wins_and_says_why(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    _role(inside)
    kms = inside.client("kms", region_name="eu-west-1")
    key = kms.create_key(Tags=[{"TagKey": "purpose", "TagValue": "vaults"}])["KeyMetadata"]
    kms.create_alias(AliasName="alias/vault-key", TargetKeyId=key["KeyId"])
    settings = load_settings(
        overrides={"regions": ["us-east-1", "eu-west-1"], "keys": {"default": FALLBACK}}
    )

    collected, _, _ = _collect_all(moto_org, settings, [member])
    collection = collected[member]

    assert collection.error is None
    [eu] = collection.keys["eu-west-1"]
    assert eu.arn == key["Arn"] and eu.aliases == ["alias/vault-key"]
    assert "first configured key" in eu.choice
    assert eu.tags == {"purpose": "vaults"}
    [us] = collection.keys["us-east-1"]
    assert us.aliases == ["alias/aws/backup"] and us.key_state == "NotCreated"
    assert "because alias/vault-key does not exist in us-east-1" in us.choice


def test_key_of_another_account_is_read_once_through_its_owner(moto_org: MotoOrg) -> None:
    security = moto_org.account("security-keys")
    users = [moto_org.account(f"workload-{n}") for n in range(3)]
    owner = moto_org.member_session(security, "eu-west-1")
    central = owner.client("kms").create_key(
        Policy=policy(
            {
                "Sid": "Owner",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{security}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ),
        Tags=[{"TagKey": "scope", "TagValue": "central"}],
    )["KeyMetadata"]
    outside = "arn:aws:kms:eu-west-1:777777777777:key/0b5e7a1c-0000-4000-8000-000000000000"
    for account_id in users:
        inside = moto_org.member_session(account_id, "eu-west-1")
        _role(inside)
        backup = inside.client("backup")
        backup.create_backup_vault(BackupVaultName="central", EncryptionKeyArn=central["Arn"])
        if account_id == users[0]:
            backup.create_backup_vault(BackupVaultName="partner", EncryptionKeyArn=outside)
    settings = load_settings(overrides={"regions": ["eu-west-1"]})

    collected, sessions, organization = _collect_all(moto_org, settings, users)

    assert organization.member(security) is not None
    for account_id in users:
        collection = collected[account_id]
        assert collection.error is None, collection.error
        keys = {key.arn: key for key in collection.keys["eu-west-1"]}
        key = keys[central["Arn"]]
        assert key.key_state == "Enabled" and key.owner_account == security
        assert key.key_policy["Statement"][0]["Sid"] == "Owner"
        assert key.tags == {"scope": "central"}
        assert key.sources == ["vault:central"]
    reads = sum(sessions.recorder.for_account(a)["kms:GetKeyPolicy"] for a in users)
    assert reads == 1  # once per key per scan, not once per account using it
    partner = {k.arn: k for k in collected[users[0]].keys["eu-west-1"]}[outside]
    assert partner.key_state == UNREADABLE
    assert any("777777777777 is not in the organization" in s for s in partner.sources)


def test_tag_designated_roles_carry_their_tags(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    _role(inside, "VaultWriter", tags=[{"Key": "backup-role", "Value": "yes"}])
    _role(inside, "BackupLookalike", tags=[{"Key": "backup-role", "Value": "no"}])
    settings = load_settings(
        overrides={
            "regions": ["us-east-1"],
            "roles": {"names": [], "tag": {"key": "backup-role", "value": "yes"}},
            "keys": {"default": FALLBACK},
        }
    )

    collected, _, _ = _collect_all(moto_org, settings, [member])

    [role] = collected[member].roles
    assert role.name == "VaultWriter"
    assert role.tags == {"backup-role": "yes"}
    assert role.role_id
