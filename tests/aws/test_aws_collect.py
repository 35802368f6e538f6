"""Collection from member accounts under moto: roles and their policies, keys, errors,
and the exact API calls made for one account."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from aws_helpers import AllowAllSimulator, MotoOrg, inject_error, policy
from botocore.stub import Stubber

from scanner.aws.collect import (
    _AccountReader,
    collect_account,
    is_designated,
    policy_document,
    read_roles,
)
from scanner.aws.organizations import discover
from scanner.aws.permissions import MEMBER_READ_ACTIONS, ORG_READ_ACTIONS, SCANNER_ACTIONS
from scanner.aws.session import AwsSessions, Credentials
from scanner.config import RoleSelector, RoleTag, Settings, load_settings
from scanner.model import Account
from scanner.profiles import load_profiles

TRUST = json.dumps({"Version": "2012-10-17", "Statement": []})
BACKUP_ALLOW = {"Effect": "Allow", "Action": "backup:*", "Resource": "*"}
KMS_ALLOW = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}


def collect(org: MotoOrg, settings: Settings, account_id: str, sessions: AwsSessions | None = None):
    sessions = sessions or AwsSessions(settings, session=org.session)
    account = Account(id=account_id, name=org.names.get(account_id, ""))
    simulator = AllowAllSimulator()
    organization = discover(sessions, settings)
    collection = collect_account(
        sessions, settings, load_profiles(settings), account, organization, simulator
    )
    return collection, simulator


def backup_role(inside, name: str = "BackupOperator", path: str = "/") -> str:
    iam = inside.client("iam")
    iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=name, PolicyName="vaults", PolicyDocument=policy(BACKUP_ALLOW))
    return name


def test_collects_role_policies_boundary_and_keys(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    iam = inside.client("iam")
    backup_role(inside)
    managed = iam.create_policy(PolicyName="KeyUse", PolicyDocument=policy(KMS_ALLOW))["Policy"]
    boundary = iam.create_policy(PolicyName="Fence", PolicyDocument=policy(BACKUP_ALLOW))["Policy"]
    iam.attach_role_policy(RoleName="BackupOperator", PolicyArn=managed["Arn"])
    iam.put_role_permissions_boundary(
        RoleName="BackupOperator", PermissionsBoundary=boundary["Arn"]
    )
    kms = inside.client("kms", region_name="eu-west-1")
    key = kms.create_key(Description="vault key")["KeyMetadata"]
    kms.create_alias(AliasName="alias/backup-key", TargetKeyId=key["KeyId"])
    inside.client("backup", region_name="eu-west-1").create_backup_vault(
        BackupVaultName="main", EncryptionKeyArn=key["Arn"]
    )
    settings = load_settings(
        overrides={
            "regions": ["us-east-1", "eu-west-1"],
            "keys": {"per_region": {"eu-west-1": "alias/backup-key"}},
        }
    )

    collection, simulator = collect(moto_org, settings, member)

    assert collection.error is None
    [role] = collection.roles
    assert role.arn == f"arn:aws:iam::{member}:role/BackupOperator"
    assert [p.name for p in role.inline_policies] == ["inline:BackupOperator/vaults"]
    assert role.inline_policies[0].document["Statement"] == [BACKUP_ALLOW]  # decoded dict
    assert [p.name for p in role.managed_policies] == [managed["Arn"]]
    assert role.managed_policies[0].document["Statement"] == [KMS_ALLOW]
    assert role.permissions_boundary is not None
    assert role.permissions_boundary.name == boundary["Arn"]

    [missing] = collection.keys["us-east-1"]
    assert missing.key_state == "NotCreated" and missing.key_policy is None
    assert missing.arn == f"arn:aws:kms:us-east-1:{member}:alias/aws/backup"
    [resolved] = collection.keys["eu-west-1"]  # the alias and the vault name the same key
    assert resolved.arn == key["Arn"] and resolved.key_id == key["KeyId"]
    assert resolved.aliases == ["alias/backup-key"]
    assert resolved.sources == ["configured", "vault:main"]
    assert resolved.key_state == "Enabled" and resolved.key_manager == "CUSTOMER"
    assert resolved.key_policy["Statement"][0]["Principal"] == {
        "AWS": f"arn:aws:iam::{member}:root"
    }

    # us-east-1: no key ARN yet, so only the two non-key actions; eu-west-1: all seven
    sims = collection.simulations
    assert len(sims[(role.arn, "us-east-1")]) == 2
    assert {a.action for a in sims[(role.arn, "eu-west-1")]} == {
        "backup:CreateBackupVault",
        "backup-storage:MountCapsule",
        "kms:CreateGrant",
        "kms:DescribeKey",
        "kms:RetireGrant",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }
    assert simulator.calls == [(role.arn, "us-east-1", 2), (role.arn, "eu-west-1", 7)]


PER_ROLE_IAM_CALLS = {
    "iam:ListRoles": 1,
    "iam:GetRole": 1,
    "iam:ListRolePolicies": 1,
    "iam:GetRolePolicy": 1,
    "iam:ListAttachedRolePolicies": 1,
    "iam:GetPolicy": 1,  # managed policy = boundary: read once
    "iam:GetPolicyVersion": 1,
}


@pytest.mark.parametrize(
    ("iam_read", "iam_calls"),
    [
        ("authorization-details", {"iam:GetAccountAuthorizationDetails": 1}),
        ("per-role", PER_ROLE_IAM_CALLS),
    ],
)
def test_api_calls_for_one_account_one_role_two_regions(
    moto_org: MotoOrg, iam_read: str, iam_calls: dict[str, int]
) -> None:
    """The table in docs/read-role.md, asserted exactly."""
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    backup_role(inside)
    iam = inside.client("iam")
    iam.create_role(RoleName="AppRole", AssumeRolePolicyDocument=TRUST)  # not designated
    managed = iam.create_policy(PolicyName="KeyUse", PolicyDocument=policy(KMS_ALLOW))["Policy"]
    iam.attach_role_policy(RoleName="BackupOperator", PolicyArn=managed["Arn"])
    iam.put_role_permissions_boundary(RoleName="BackupOperator", PermissionsBoundary=managed["Arn"])
    kms = inside.client("kms", region_name="eu-west-1")
    key = kms.create_key()["KeyMetadata"]
    inside.client("backup", region_name="eu-west-1").create_backup_vault(
        BackupVaultName="main", EncryptionKeyArn=key["Arn"]
    )
    settings = load_settings(
        overrides={"regions": ["us-east-1", "eu-west-1"], "iam_read": iam_read}
    )

    collection, _ = collect(moto_org, settings, member)

    assert collection.error is None
    assert [policy.name for policy in collection.roles[0].identity_policies] == [
        "inline:BackupOperator/vaults",
        managed["Arn"],
    ]
    assert collection.roles[0].permissions_boundary is not None
    assert collection.api_calls == Counter(
        {
            "sts:AssumeRole": 1,
            **iam_calls,
            "kms:DescribeKey": 3,  # alias/aws/backup in both regions + the vault key
            "backup:ListBackupVaults": 2,
            "kms:GetKeyPolicy": 1,
            "kms:ListGrants": 1,
            "kms:ListResourceTags": 1,  # aws:ResourceTag/<key> in the request context
        }
    )


def test_designated_role_matching() -> None:
    selector = RoleSelector(
        names=["*Backup*", "vault-?"], path="/backup/", tag=RoleTag(key="team", value="backup")
    )
    assert is_designated("BackupOperator", "/", {}, selector)
    assert is_designated("nightly-backup", "/", {}, selector)  # globs ignore case
    assert is_designated("vault-1", "/", {}, selector)
    assert not is_designated("vault-10", "/", {}, selector)
    assert is_designated("Ops", "/backup/eu/", {}, selector)
    assert is_designated("Ops", "/", {"team": "backup"}, selector)
    assert not is_designated("Ops", "/", {"team": "web"}, selector)
    assert not is_designated(
        "AWSServiceRoleForBackup", "/aws-service-role/backup.amazonaws.com/", {}, selector
    )
    any_value = RoleSelector(names=[], tag=RoleTag(key="backup"))
    assert is_designated("Ops", "/", {"backup": ""}, any_value)
    assert not is_designated("BackupOperator", "/", {}, any_value)


def test_tags_are_read_only_for_roles_not_matched_otherwise(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    iam = inside.client("iam")
    backup_role(inside)  # matches by name: no ListRoleTags
    iam.create_role(RoleName="Ops", Path="/backup/", AssumeRolePolicyDocument=TRUST)
    iam.create_role(
        RoleName="Tagged",
        AssumeRolePolicyDocument=TRUST,
        Tags=[{"Key": "team", "Value": "backup"}],
    )
    iam.create_role(
        RoleName="Web", AssumeRolePolicyDocument=TRUST, Tags=[{"Key": "team", "Value": "web"}]
    )
    settings = load_settings(
        overrides={
            "iam_read": "per-role",  # ListRoles carries no tags: read where needed
            "roles": {
                "names": ["*Backup*"],
                "path": "/backup/",
                "tag": {"key": "team", "value": "backup"},
            },
        }
    )

    collection, _ = collect(moto_org, settings, member)

    assert sorted(role.name for role in collection.roles) == ["BackupOperator", "Ops", "Tagged"]
    tagged = next(role for role in collection.roles if role.name == "Tagged")
    assert tagged.tags == {"team": "backup"}
    every_role = iam.list_roles()["Roles"]
    # every role not matched by name or path (Tagged, Web, the account access role)
    assert collection.api_calls["iam:ListRoleTags"] == len(every_role) - 2
    assert collection.api_calls["iam:GetRole"] == 3


def test_roles_on_a_second_page_are_found(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    iam = inside.client("iam")
    for index in range(101):  # ListRoles returns at most 100 per page
        iam.create_role(RoleName=f"App{index:03d}", AssumeRolePolicyDocument=TRUST)
    backup_role(inside, "ZBackupA")
    backup_role(inside, "ZBackupB")

    collection, _ = collect(moto_org, load_settings(overrides={"iam_read": "per-role"}), member)

    assert sorted(role.name for role in collection.roles) == ["ZBackupA", "ZBackupB"]
    assert collection.api_calls["iam:ListRoles"] == 2


def test_one_account_denied_another_still_collected(moto_org: MotoOrg) -> None:
    good, bad = moto_org.account("good"), moto_org.account("bad")
    for account_id in (good, bad):
        backup_role(moto_org.member_session(account_id))
    settings = load_settings(overrides={})
    sessions = AwsSessions(settings, session=moto_org.session)
    inject_error(
        sessions.client("sts", "us-east-1"),
        "sts.AssumeRole",
        "AccessDenied",
        "is not authorized to perform: sts:AssumeRole",
        status=403,
        when=lambda params: bad in json.dumps(params, default=str),
    )
    organization = discover(sessions, settings)
    profiles = load_profiles(settings)

    def run(account_id: str):
        return collect_account(
            sessions,
            settings,
            profiles,
            Account(id=account_id, name=""),
            organization,
            AllowAllSimulator(),
        )

    with ThreadPoolExecutor(2) as pool:
        good_result, bad_result = pool.map(run, [good, bad])

    assert bad_result.error is not None
    assert "AccessDenied: is not authorized to perform: sts:AssumeRole" in bad_result.error
    assert bad_result.roles == [] and bad_result.api_calls == Counter({"sts:AssumeRole": 1})
    assert good_result.error is None
    assert [role.name for role in good_result.roles] == ["BackupOperator"]
    assert good_result.api_calls["iam:GetAccountAuthorizationDetails"] == 1


def test_unreadable_key_is_recorded_on_the_key(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    backup_role(inside)
    key = inside.client("kms").create_key()["KeyMetadata"]
    settings = load_settings(overrides={"keys": {"default": key["Arn"]}})
    sessions = AwsSessions(settings, session=moto_org.session)
    credentials = sessions.assume_member(member)
    inject_error(
        sessions.client("kms", "us-east-1", credentials),
        "kms.GetKeyPolicy",
        "AccessDeniedException",
        "key policy does not allow the read role",
    )

    collection, _ = collect(moto_org, settings, member, sessions)

    assert collection.error is None
    [unreadable] = collection.keys["us-east-1"]
    assert unreadable.arn == key["Arn"]
    assert unreadable.key_state == "Unreadable" and unreadable.key_policy is None
    assert "unreadable:AccessDeniedException: key policy does not allow the read role" in (
        unreadable.sources
    )


def test_missing_customer_key_is_not_found(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    backup_role(moto_org.member_session(member))
    settings = load_settings(overrides={"keys": {"default": "alias/does-not-exist"}})
    collection, _ = collect(moto_org, settings, member)
    assert collection.error is None
    [missing] = collection.keys["us-east-1"]
    assert missing.key_state == "NotFound" and missing.aliases == ["alias/does-not-exist"]


def test_denied_read_becomes_an_account_error_naming_the_action(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    settings = load_settings(overrides={"iam_read": "per-role"})
    sessions = AwsSessions(settings, session=moto_org.session)
    credentials = sessions.assume_member(member)
    inject_error(
        sessions.client("iam", "us-east-1", credentials),
        "iam.ListRoles",
        "AccessDenied",
        "nope",
        403,
    )
    collection, _ = collect(moto_org, settings, member, sessions)
    assert collection.error is not None
    assert collection.error.startswith("iam:ListRoles failed: AccessDenied: nope")
    assert "docs/read-role.md" in collection.error


def test_aws_managed_policies_are_read_once_per_scan(aws_env: None) -> None:
    """AWS-managed documents are the same in every account: fetched by the first one only;
    customer-managed ones are fetched in each account."""
    aws_arn = "arn:aws:iam::aws:policy/AWSBackupFullAccess"
    settings = load_settings(overrides={})
    sessions = AwsSessions(settings)
    document = {"Version": "2012-10-17", "Statement": [BACKUP_ALLOW]}
    readers = []
    for account_id in ("111111111111", "222222222222"):
        credentials = Credentials(f"ASIA{account_id}", "s", "t", account_id)
        readers.append(_AccountReader(sessions, settings, Account(account_id, ""), credentials))
    with Stubber(readers[0].iam) as first, Stubber(readers[1].iam) as second:
        for stub, account_id in ((first, "111111111111"), (second, "222222222222")):
            own_arn = f"arn:aws:iam::{account_id}:policy/Own"
            if stub is first:
                expect_policy(stub, aws_arn, "v7", document)
            expect_policy(stub, own_arn, "v1", document)
        for reader in readers:
            assert reader.managed_policy(aws_arn) == document
            own = f"arn:aws:iam::{reader.account.id}:policy/Own"
            assert reader.managed_policy(own) == document
            assert reader.managed_policy(own) == document  # cached within the account
        first.assert_no_pending_responses()
        second.assert_no_pending_responses()
    assert sessions.recorder.by_account["222222222222"]["iam:GetPolicyVersion"] == 1
    assert sessions.recorder.by_account["111111111111"]["iam:GetPolicyVersion"] == 2


def expect_policy(stub: Stubber, arn: str, version: str, document: dict) -> None:
    stub.add_response(
        "get_policy", {"Policy": {"Arn": arn, "DefaultVersionId": version}}, {"PolicyArn": arn}
    )
    stub.add_response(
        "get_policy_version",
        {"PolicyVersion": {"Document": quote(json.dumps(document)), "VersionId": version}},
        {"PolicyArn": arn, "VersionId": version},
    )


def test_policy_document_accepts_url_encoded_json() -> None:
    document = {"Version": "2012-10-17", "Statement": [BACKUP_ALLOW]}
    assert policy_document(quote(json.dumps(document))) == document
    assert policy_document(document) is document


def test_every_call_made_is_a_declared_permission(moto_org: MotoOrg) -> None:
    """permissions.py lists exactly what discovery and collection call."""
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    backup_role(inside)
    managed = inside.client("iam").create_policy(PolicyName="K", PolicyDocument=policy(KMS_ALLOW))
    inside.client("iam").attach_role_policy(
        RoleName="BackupOperator", PolicyArn=managed["Policy"]["Arn"]
    )
    key = inside.client("kms").create_key()["KeyMetadata"]
    inside.client("backup").create_backup_vault(BackupVaultName="v", EncryptionKeyArn=key["Arn"])
    role_arn = f"arn:aws:iam::{moto_org.management_id}:role/OrgReader"
    settings = load_settings(
        overrides={
            "organization": {"role_arn": role_arn},
            # names as well as a tag: the tag alone would designate only tagged roles
            "roles": {"names": ["*Backup*"], "tag": {"key": "team"}},
            # grouping the report by owner makes discovery read each account's tags
            "report": {"owner_tag": "owner"},
        }
    )
    inside.client("iam").create_role(RoleName="Other", AssumeRolePolicyDocument=TRUST)
    sessions = AwsSessions(settings, session=moto_org.session)

    collect(moto_org, settings, member, sessions)  # few SCPs: attachments listed by policy
    per_role = settings.model_copy(update={"iam_read": "per-role"})
    collect(moto_org, per_role, member, sessions)
    moto_org.scp("Spare", {"Version": "2012-10-17", "Statement": []})
    discover(sessions, settings)  # as many SCPs as targets: listed by target

    performed = set(sessions.recorder.actions())
    declared = set(MEMBER_READ_ACTIONS) | set(ORG_READ_ACTIONS) | set(SCANNER_ACTIONS)
    assert performed <= declared
    # moto has no policy simulator: that one action is exercised by test_aws_simulator
    assert declared - performed == {"iam:SimulatePrincipalPolicy"}


def test_disabled_region_is_explained(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    backup_role(moto_org.member_session(member))
    settings = load_settings(overrides={"regions": ["us-east-1", "ap-east-1"]})
    sessions = AwsSessions(settings, session=moto_org.session)
    credentials = sessions.assume_member(member)
    inject_error(
        sessions.client("kms", "ap-east-1", credentials),
        "kms.DescribeKey",
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
    collection, _ = collect(moto_org, settings, member, sessions)
    assert collection.error == (
        "kms:DescribeKey in ap-east-1 failed: UnrecognizedClientException: The security token "
        "included in the request is invalid. (is the region enabled for this account? check "
        "`regions` in the settings)"
    )


def test_clients_are_released_after_the_account_and_credentials_reused(
    moto_org: MotoOrg,
) -> None:
    member = moto_org.account("member")
    backup_role(moto_org.member_session(member))
    settings = load_settings(overrides={"regions": ["us-east-1", "eu-west-1"]})
    sessions = AwsSessions(settings, session=moto_org.session)

    first, _ = collect(moto_org, settings, member, sessions)
    assert sessions.cached_clients(member) == []
    second, _ = collect(moto_org, settings, member, sessions)  # e.g. the next scheduled scan

    assert first.error is None and second.error is None
    assert first.api_calls["sts:AssumeRole"] == 1
    assert second.api_calls["sts:AssumeRole"] == 0  # credentials still valid: reused
    assert second.api_calls["iam:GetAccountAuthorizationDetails"] == 1
    assert sessions.cached_clients(member) == []


def test_read_role_without_authorization_details_falls_back_to_per_role_calls(
    moto_org: MotoOrg,
) -> None:
    """A read role deployed before iam:GetAccountAuthorizationDetails was needed still
    gets its account scanned, with the per-role calls."""
    member = moto_org.account("member")
    backup_role(moto_org.member_session(member))
    settings = load_settings(overrides={})
    sessions = AwsSessions(settings, session=moto_org.session)
    credentials = sessions.assume_member(member)
    inject_error(
        sessions.client("iam", "us-east-1", credentials),
        "iam.GetAccountAuthorizationDetails",
        "AccessDenied",
        "not authorized to perform: iam:GetAccountAuthorizationDetails",
        403,
    )
    collection, _ = collect(moto_org, settings, member, sessions)
    assert collection.error is None
    assert [role.name for role in collection.roles] == ["BackupOperator"]
    assert [policy.name for policy in collection.roles[0].inline_policies] == [
        "inline:BackupOperator/vaults"
    ]
    assert collection.api_calls["iam:GetAccountAuthorizationDetails"] == 1
    assert collection.api_calls["iam:ListRoles"] == 1


def test_only_the_designated_roles_documents_are_decoded(moto_org: MotoOrg) -> None:
    """GetAccountAuthorizationDetails answers every role's and customer-managed policy's
    document; those no designated role uses are left as IAM sent them."""
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    iam = inside.client("iam")
    backup_role(inside)
    used = iam.create_policy(PolicyName="KeyUse", PolicyDocument=policy(KMS_ALLOW))["Policy"]
    unused = iam.create_policy(PolicyName="Other", PolicyDocument=policy(KMS_ALLOW))["Policy"]
    iam.attach_role_policy(RoleName="BackupOperator", PolicyArn=used["Arn"])
    iam.create_role(RoleName="app", AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName="app", PolicyName="p", PolicyDocument=policy(KMS_ALLOW))
    settings = load_settings(overrides={})
    sessions = AwsSessions(settings, session=moto_org.session)
    reader = _AccountReader(
        sessions, settings, Account(member, "member"), sessions.assume_member(member)
    )

    [role] = read_roles(reader, settings)

    assert role.inline_policies[0].document["Statement"] == [BACKUP_ALLOW]
    assert role.managed_policies[0].document["Statement"] == [KMS_ALLOW]
    assert reader.customer_managed[used["Arn"]] is role.managed_policies[0].document
    assert isinstance(reader.customer_managed[unused["Arn"]], str)  # never decoded
    assert policy_document(reader.customer_managed[unused["Arn"]])["Statement"] == [KMS_ALLOW]
