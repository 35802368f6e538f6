"""One Session, cached clients, AssumeRole per account, SDK configuration, call recording."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_helpers import MotoOrg, inject_error
from botocore.stub import Stubber

from scanner.aws.session import AccountAccessError, AwsSessions, Credentials, session_name
from scanner.config import load_settings

MEMBER = "123456789012"


def test_assume_member_builds_role_arn_with_external_id_and_session_name(aws_env: None) -> None:
    settings = load_settings(
        overrides={
            "member": {
                "read_role_name": "Reader",
                "read_role_path": "/security/",
                "external_id": "ext-42",
            }
        }
    )
    sessions = AwsSessions(settings, host="scanner-7.internal")
    expires = datetime.now(UTC) + timedelta(hours=1)
    with Stubber(sessions.client("sts", "us-east-1")) as stub:
        stub.add_response(
            "assume_role",
            {
                "Credentials": {
                    "AccessKeyId": "ASIAEXAMPLEEXAMPLE01",
                    "SecretAccessKey": "secret",
                    "SessionToken": "token",
                    "Expiration": expires,
                }
            },
            {
                "RoleArn": f"arn:aws:iam::{MEMBER}:role/security/Reader",
                "RoleSessionName": "vaultscan-scanner-7",
                "ExternalId": "ext-42",
            },
        )
        first = sessions.assume_member(MEMBER)
        again = sessions.assume_member(MEMBER)  # cached: no second AssumeRole
        stub.assert_no_pending_responses()
    assert first is again and first.account_id == MEMBER
    assert "secret" not in repr(first) and "token" not in repr(first)
    assert sessions.recorder.by_account[MEMBER]["sts:AssumeRole"] == 1


def test_expiring_credentials_are_renewed() -> None:
    soon = Credentials("AKIA", "s", "t", MEMBER, datetime.now(UTC) + timedelta(minutes=2))
    later = Credentials("AKIA", "s", "t", MEMBER, datetime.now(UTC) + timedelta(minutes=50))
    assert soon.expiring() and not later.expiring()


def test_session_name_is_valid_for_sts() -> None:
    name = session_name("vaultscan", "host with spaces/and:colons." + "x" * 80)
    assert name.startswith("vaultscan-host-with-spaces-and-colons")
    assert len(name) <= 64 and all(c.isalnum() or c in "+=,.@-_" for c in name)


def test_assume_role_failure_carries_aws_code_and_message(aws_env: None) -> None:
    sessions = AwsSessions(load_settings(overrides={}))
    with Stubber(sessions.client("sts", "us-east-1")) as stub:
        stub.add_client_error(
            "assume_role", "AccessDenied", "User is not authorized to perform: sts:AssumeRole"
        )
        with pytest.raises(AccountAccessError) as caught:
            sessions.assume_member(MEMBER)
    assert caught.value.account_id == MEMBER
    assert "AccessDenied: User is not authorized to perform: sts:AssumeRole" in caught.value.reason
    assert f"arn:aws:iam::{MEMBER}:role/VaultscanReadRole" in caught.value.reason


def test_clients_come_from_one_session_and_are_cached(aws_env: None) -> None:
    sessions = AwsSessions(load_settings(overrides={}))
    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(lambda _: sessions.client("kms", "eu-west-1"), range(16)))
    assert all(client is clients[0] for client in clients)
    assert sessions.client("kms", "us-east-1") is not clients[0]


def test_clients_honour_the_sdk_environment(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    sessions = AwsSessions(load_settings(overrides={}))
    client = sessions.client("iam", "us-east-1")
    assert client.meta.config.retries == {"total_max_attempts": 7, "mode": "adaptive"}
    assert client.meta.endpoint_url == "http://localhost:4566"


def test_profile_from_settings_is_used(aws_env: None, tmp_path, monkeypatch) -> None:
    config = tmp_path / "config"
    config.write_text("[profile audit]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    sessions = AwsSessions(load_settings(overrides={"organization": {"profile": "audit"}}))
    assert sessions.session.profile_name == "audit"
    assert sessions.session.region_name == "eu-central-1"


def test_moto_files_resources_under_the_assumed_account(moto_org: MotoOrg) -> None:
    """The premise of the moto tests: assumed-role credentials for X act inside X."""
    member = moto_org.account("member")
    inside = moto_org.member_session(member)
    inside.client("iam").create_role(
        RoleName="BackupOperator", AssumeRolePolicyDocument=json.dumps({"Statement": []})
    )
    identity = inside.client("sts").get_caller_identity()
    assert identity["Account"] == member
    arn = inside.client("iam").get_role(RoleName="BackupOperator")["Role"]["Arn"]
    assert arn == f"arn:aws:iam::{member}:role/BackupOperator"
    outside = moto_org.session.client("iam").list_roles()["Roles"]
    assert "BackupOperator" not in {role["RoleName"] for role in outside}


def test_recorder_counts_per_account_of_the_credentials(moto_org: MotoOrg) -> None:
    member = moto_org.account("member")
    sessions = AwsSessions(load_settings(overrides={}), session=moto_org.session)
    credentials = sessions.assume_member(member)
    iam = sessions.client("iam", "us-east-1", credentials)
    iam.list_roles()
    iam.list_roles()
    sessions.client("kms", "eu-west-1", credentials).list_keys()
    sessions.client("organizations", "us-east-1").list_roots()
    assert sessions.recorder.by_account[member] == {
        "sts:AssumeRole": 1,
        "iam:ListRoles": 2,
        "kms:ListKeys": 1,
    }
    assert sessions.recorder.by_account["ambient"] == {"organizations:ListRoots": 1}
    assert sessions.recorder.counts["iam:ListRoles"] == 2


def test_assume_role_failure_for_one_account_only(moto_org: MotoOrg) -> None:
    good, bad = moto_org.account("good"), moto_org.account("bad")
    sessions = AwsSessions(load_settings(overrides={}), session=moto_org.session)
    inject_error(
        sessions.client("sts", "us-east-1"),
        "sts.AssumeRole",
        "AccessDenied",
        "not trusted",
        status=403,
        when=lambda params: bad in json.dumps(params, default=str),
    )
    assert sessions.assume_member(good).account_id == good
    with pytest.raises(AccountAccessError, match="AccessDenied: not trusted"):
        sessions.assume_member(bad)


def test_no_session_is_created_per_account(moto_org: MotoOrg, monkeypatch) -> None:
    created: list[object] = []
    original = boto3.Session.__init__

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN202
        created.append(self)
        original(self, *args, **kwargs)

    sessions = AwsSessions(load_settings(overrides={}), session=moto_org.session)
    members = [moto_org.account(f"m{i}") for i in range(3)]
    monkeypatch.setattr(boto3.Session, "__init__", counting)
    for member in members:
        credentials = sessions.assume_member(member)
        sessions.client("iam", "us-east-1", credentials).list_roles()
    assert created == []


def test_a_released_client_serves_the_next_account_with_its_credentials(
    moto_org: MotoOrg,
) -> None:
    """Clients are handed from one account to the next instead of being made anew; the
    reused client must sign as the new account, and its calls count for it."""
    first, second = moto_org.account("first"), moto_org.account("second")
    sessions = AwsSessions(load_settings(overrides={}), session=moto_org.session)
    sts = sessions.client("sts", "eu-west-1", sessions.assume_member(first))
    assert sts.get_caller_identity()["Account"] == first
    assert sessions.release_account(first) == 1

    again = sessions.client("sts", "eu-west-1", sessions.assume_member(second))
    assert again is sts  # taken over, not made anew
    assert again.get_caller_identity()["Account"] == second
    assert sessions.recorder.by_account[first]["sts:GetCallerIdentity"] == 1
    assert sessions.recorder.by_account[second]["sts:GetCallerIdentity"] == 1
    assert sessions.cached_clients(first) == []


def test_idle_clients_are_kept_up_to_the_accounts_in_flight(moto_org: MotoOrg) -> None:
    settings = load_settings(overrides={"concurrency": 2})
    sessions = AwsSessions(settings, session=moto_org.session)
    accounts = [moto_org.account(f"member-{index}") for index in range(3)]
    clients = [
        sessions.client("kms", "us-east-1", sessions.assume_member(account)) for account in accounts
    ]
    assert len({id(client) for client in clients}) == 3  # all in use at once: three made
    for account in accounts:
        sessions.release_account(account)
    kept = [
        sessions.client("kms", "us-east-1", sessions.assume_member(account)) for account in accounts
    ]
    assert sum(client in clients for client in kept) == 2  # the third was closed
