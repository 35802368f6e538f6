"""Discovery: OU paths, inactive accounts, filters, SCP/RCP paths, pagination, errors."""

from __future__ import annotations

import pytest
from aws_helpers import ALLOW_ALL, MotoOrg, inject_error
from botocore.retries.standard import ExponentialBackoff
from botocore.stub import Stubber

from scanner.aws.organizations import DiscoveryError, discover, is_active
from scanner.aws.ratelimit import (
    ORGANIZATIONS_RATES,
    PACED_MAX_ATTEMPTS,
    SDK_MAX_ATTEMPTS,
    RetryPolicy,
    Throttle,
    paced_retry,
)
from scanner.aws.session import AwsSessions
from scanner.config import Settings, load_settings

DENY_VAULT = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "NoVaults", "Effect": "Deny", "Action": "backup:CreateBackupVault", "Resource": "*"}
    ],
}


def no_wait_sessions(org: MotoOrg, settings: Settings) -> AwsSessions:
    sleeps: list[float] = []
    return AwsSessions(
        settings,
        session=org.session,
        org_throttle=Throttle(retry=RetryPolicy(sleep=sleeps.append)),
    )


@pytest.fixture
def tree(moto_org: MotoOrg) -> dict[str, str]:
    """root -> prod -> prod/eu -> prod/eu/payments (3 levels), plus a sandbox OU."""
    ids = {"prod": moto_org.ou("prod")}
    ids["eu"] = moto_org.ou("eu", ids["prod"])
    ids["payments"] = moto_org.ou("payments", ids["eu"])
    ids["sandbox"] = moto_org.ou("sandbox")
    ids["deep"] = moto_org.account("deep", ids["payments"])
    ids["mid"] = moto_org.account("mid", ids["eu"])
    ids["play"] = moto_org.account("play", ids["sandbox"])
    ids["top"] = moto_org.account("top")
    return ids


def test_nested_ous_give_each_account_its_path(moto_org: MotoOrg, tree: dict[str, str]) -> None:
    settings = load_settings(overrides={})
    organization = discover(no_wait_sessions(moto_org, settings), settings)

    paths = {account.id: account.ou_path_ids for account in organization.accounts}
    root = moto_org.root_id
    assert paths == {
        tree["deep"]: f"{root}/{tree['prod']}/{tree['eu']}/{tree['payments']}",
        tree["mid"]: f"{root}/{tree['prod']}/{tree['eu']}",
        tree["play"]: f"{root}/{tree['sandbox']}",
        tree["top"]: root,
    }
    deep = next(a for a in organization.accounts if a.id == tree["deep"])
    assert deep.ou_path_names == "Root/prod/eu/payments"
    assert deep.name == "deep" and deep.email == "deep@example.com"
    assert organization.management_account_id == moto_org.management_id


def test_management_account_only_when_asked(moto_org: MotoOrg, tree: dict[str, str]) -> None:
    settings = load_settings(overrides={"member": {"scan_management_account": True}})
    organization = discover(no_wait_sessions(moto_org, settings), settings)
    assert moto_org.management_id in {account.id for account in organization.accounts}

    default = load_settings(overrides={})
    organization = discover(no_wait_sessions(moto_org, default), default)
    assert moto_org.management_id not in {account.id for account in organization.accounts}


def test_closed_accounts_are_skipped(moto_org: MotoOrg, tree: dict[str, str]) -> None:
    moto_org.client.close_account(AccountId=tree["play"])
    settings = load_settings(overrides={})
    organization = discover(no_wait_sessions(moto_org, settings), settings)
    ids = {account.id for account in organization.accounts}
    assert tree["play"] not in ids
    assert tree["top"] in ids


@pytest.mark.parametrize(
    ("raw", "active"),
    [
        ({"Status": "ACTIVE"}, True),
        ({"Status": "SUSPENDED"}, False),
        ({"Status": "PENDING_CLOSURE"}, False),
        ({"Status": "ACTIVE", "State": "SUSPENDED"}, False),
        ({"State": "ACTIVE"}, True),
        ({"State": "CLOSED"}, False),
    ],
)
def test_status_and_state_fields(raw: dict[str, str], active: bool) -> None:
    assert is_active(raw) is active


def test_scp_path_shape_root_first_account_last(moto_org: MotoOrg, tree: dict[str, str]) -> None:
    moto_org.scp("NoVaults", DENY_VAULT, tree["eu"])
    moto_org.scp("AccountGuard", ALLOW_ALL, tree["deep"])
    settings = load_settings(overrides={})
    sessions = no_wait_sessions(moto_org, settings)
    organization = discover(sessions, settings)

    deep = next(a for a in organization.accounts if a.id == tree["deep"])
    path = organization.policy_path(deep, "scp")
    names = [[policy.name.split(" ")[1] for policy in level] for level in path]
    assert names == [
        ["(FullAWSAccess)"],  # root
        ["(FullAWSAccess)"],  # prod
        ["(FullAWSAccess)", "(NoVaults)"],  # eu
        ["(FullAWSAccess)"],  # payments
        ["(FullAWSAccess)", "(AccountGuard)"],  # the account itself
    ]
    no_vaults = path[2][1]
    assert no_vaults.name.startswith("p-") and no_vaults.document == DENY_VAULT
    # RCPs are not enabled in this organization: not governed, nothing fetched
    assert organization.rcps_enabled is False and organization.policy_path(deep, "rcp") == []
    # FullAWSAccess is attached everywhere but described once
    assert sessions.recorder.counts["organizations:DescribePolicy"] == 3


def test_rcps_are_collected_when_enabled(moto_org: MotoOrg, tree: dict[str, str]) -> None:
    moto_org.client.enable_policy_type(
        RootId=moto_org.root_id, PolicyType="RESOURCE_CONTROL_POLICY"
    )
    rcp = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}],
    }
    moto_org.scp("KeyPerimeter", rcp, tree["sandbox"], kind="RESOURCE_CONTROL_POLICY")
    settings = load_settings(overrides={})
    organization = discover(no_wait_sessions(moto_org, settings), settings)

    play = next(a for a in organization.accounts if a.id == tree["play"])
    levels = organization.policy_path(play, "rcp")
    assert organization.rcps_enabled
    assert [len(level) for level in levels] == [1, 2, 1]
    assert levels[1][1].document == rcp


def test_policies_only_for_paths_of_included_accounts(
    moto_org: MotoOrg, tree: dict[str, str]
) -> None:
    settings = load_settings(overrides={"ous": {"include": [tree["sandbox"]]}})
    sessions = no_wait_sessions(moto_org, settings)
    organization = discover(sessions, settings)

    assert [account.id for account in organization.accounts] == [tree["play"]]
    assert set(organization.scps) == {moto_org.root_id, tree["sandbox"], tree["play"]}
    # one SCP (FullAWSAccess) and three targets: listed by policy, not by target
    assert sessions.recorder.counts["organizations:ListTargetsForPolicy"] == 1
    assert sessions.recorder.counts["organizations:ListPoliciesForTarget"] == 0


def test_both_attachment_listings_agree(moto_org: MotoOrg, tree: dict[str, str]) -> None:
    moto_org.scp("NoVaults", DENY_VAULT, tree["sandbox"], tree["play"])
    settings = load_settings(overrides={"ous": {"include": [tree["sandbox"]]}})
    by_policy = no_wait_sessions(moto_org, settings)
    first = discover(by_policy, settings)
    for index in range(2):  # now 4 SCPs for 3 targets: listing by target is cheaper
        moto_org.scp(f"Unused{index}", DENY_VAULT)
    by_target = no_wait_sessions(moto_org, settings)
    second = discover(by_target, settings)

    assert by_policy.recorder.counts["organizations:ListTargetsForPolicy"] == 2
    assert by_target.recorder.counts["organizations:ListTargetsForPolicy"] == 0
    assert by_target.recorder.counts["organizations:ListPoliciesForTarget"] == 3
    assert first.scps == second.scps
    play = next(a for a in second.accounts if a.id == tree["play"])
    names = [[p.name.split(" ")[1] for p in level] for level in second.policy_path(play, "scp")]
    assert names == [
        ["(FullAWSAccess)"],
        ["(FullAWSAccess)", "(NoVaults)"],
        ["(FullAWSAccess)", "(NoVaults)"],
    ]
    assert by_target.recorder.counts["organizations:DescribePolicy"] == 2  # unused: never read


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"accounts": {"include": ["deep", "top"]}}, {"deep", "top"}),
        ({"accounts": {"exclude": ["deep"]}}, {"mid", "play", "top"}),
        ({"ous": {"include": ["prod"]}}, {"deep", "mid"}),  # any depth
        ({"ous": {"include": ["prod"], "exclude": ["payments"]}}, {"mid"}),
        ({"ous": {"include": ["sandbox"]}, "accounts": {"include": ["top"]}}, {"play", "top"}),
        ({"ous": {"exclude": ["prod"]}, "accounts": {"exclude": ["top"]}}, {"play"}),
    ],
)
def test_include_exclude_filters(
    moto_org: MotoOrg, tree: dict[str, str], filters: dict, expected: set[str]
) -> None:
    resolved = {
        section: {kind: [tree[name] for name in names] for kind, names in parts.items()}
        for section, parts in filters.items()
    }
    settings = load_settings(overrides=resolved)
    organization = discover(no_wait_sessions(moto_org, settings), settings)
    assert {account.id for account in organization.accounts} == {tree[n] for n in expected}


def test_excluded_ou_subtree_is_not_walked(moto_org: MotoOrg, tree: dict[str, str]) -> None:
    settings = load_settings(overrides={"ous": {"exclude": [tree["prod"]]}})
    sessions = no_wait_sessions(moto_org, settings)
    discover(sessions, settings)
    # root and sandbox only: prod, eu and payments are never listed
    assert sessions.recorder.counts["organizations:ListAccountsForParent"] == 2


def test_pages_are_followed(aws_env: None) -> None:
    """Stubbed Organizations: two pages of accounts, no real sleeping. (A Stubber answers
    before botocore's retry handler: the SDK's retries are tested at the HTTP level.)"""
    settings = load_settings(overrides={})
    sessions = AwsSessions(settings, org_throttle=Throttle())
    client = sessions.org_client()
    root = {"Id": "r-ab12", "Name": "Root", "PolicyTypes": []}
    account = {"Id": "111111111111", "Name": "one", "Email": "one@example.com", "Status": "ACTIVE"}
    other = {"Id": "222222222222", "Name": "two", "Email": "two@example.com", "State": "ACTIVE"}
    with Stubber(client) as stub:
        stub.add_response(
            "describe_organization", {"Organization": {"MasterAccountId": "999999999999"}}
        )
        stub.add_response("list_roots", {"Roots": [root]})
        stub.add_response(
            "list_accounts_for_parent",
            {"Accounts": [account], "NextToken": "page-2"},
            {"ParentId": "r-ab12"},
        )
        stub.add_response(
            "list_accounts_for_parent",
            {"Accounts": [other]},
            {"ParentId": "r-ab12", "NextToken": "page-2"},
        )
        stub.add_response("list_organizational_units_for_parent", {"OrganizationalUnits": []})
        organization = discover(sessions, settings)
        stub.assert_no_pending_responses()
    assert [a.id for a in organization.accounts] == ["111111111111", "222222222222"]
    assert organization.scps_enabled is False and organization.scps == {}


def test_access_denied_names_the_call(aws_env: None) -> None:
    settings = load_settings(overrides={})
    sessions = AwsSessions(settings)
    with Stubber(sessions.org_client()) as stub:
        stub.add_client_error(
            "describe_organization", "AccessDeniedException", "not a management account"
        )
        with pytest.raises(DiscoveryError) as caught:
            discover(sessions, settings)
    message = str(caught.value)
    assert "organizations:DescribeOrganization" in message
    assert "AccessDeniedException: not a management account" in message
    assert "organization.role_arn" in message


def test_organization_role_is_assumed_once(moto_org: MotoOrg, tree: dict[str, str]) -> None:
    role_arn = f"arn:aws:iam::{moto_org.management_id}:role/OrgReader"
    settings = load_settings(overrides={"organization": {"role_arn": role_arn}})
    sessions = no_wait_sessions(moto_org, settings)
    discover(sessions, settings)
    discover(sessions, settings)
    calls = sessions.recorder.by_account[moto_org.management_id]
    assert calls["sts:AssumeRole"] == 1
    assert calls["organizations:ListRoots"] == 2


def paced_sessions(org: MotoOrg, settings: Settings) -> tuple[AwsSessions, list[float]]:
    """Sessions whose Organizations throttle is the default one (documented rates, paced
    retries) on a fake clock: every wait is recorded, none is real."""
    clock = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    retry = paced_retry(org.session)
    retry.sleep = sleep
    throttle = Throttle(ORGANIZATIONS_RATES, retry=retry, clock=lambda: clock[0], sleep=sleep)
    return AwsSessions(settings, session=org.session, org_throttle=throttle), waits


def test_always_throttled_call_makes_the_paced_attempts_and_is_reported_as_throttling(
    moto_org: MotoOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attempt goes through the bucket (one request each, no SDK retries beneath),
    up to PACED_MAX_ATTEMPTS, then a clear throttling error."""
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    settings = load_settings(overrides={})
    sessions, waits = paced_sessions(moto_org, settings)
    requests = throttle_on_the_wire(sessions.org_client(), "ListRoots")
    with pytest.raises(DiscoveryError) as caught:
        discover(sessions, settings)
    assert requests[0] == PACED_MAX_ATTEMPTS == 15
    message = str(caught.value)
    assert "organizations:ListRoots still throttled after 15 attempts" in message
    assert "TooManyRequestsException" in message
    assert "read access" not in message  # not blamed on missing permissions
    assert sessions.org_throttle._buckets["ListRoots"].rate == pytest.approx(5.0 / 16)
    assert sum(waits) > 60  # patience: backoff plus the slowed bucket


def test_discovery_rides_out_a_run_of_throttles(
    moto_org: MotoOrg, tree: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More refusals in a row than botocore's 5 attempts: the paced retries absorb them."""
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    settings = load_settings(overrides={})
    sessions, _ = paced_sessions(moto_org, settings)
    client = sessions.org_client()
    requests = throttle_on_the_wire(client, "ListOrganizationalUnitsForParent", times=8)
    organization = discover(sessions, settings)
    assert {account.id for account in organization.accounts} >= {tree["deep"], tree["play"]}
    assert requests[0] > 8  # the 8 refusals, then the walk's own calls
    bucket = sessions.org_throttle._buckets["ListOrganizationalUnitsForParent"]
    assert bucket.rate < 5.0  # slowed by the refusals, recovering as calls succeed


def test_user_retry_settings_take_precedence(
    moto_org: MotoOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    sessions = AwsSessions(load_settings(overrides={}), session=moto_org.session)
    # member accounts: botocore retries; Organizations: the paced retries, one request each
    assert sessions.client("iam", "us-east-1").meta.config.retries == {
        "mode": "adaptive",
        "total_max_attempts": 2,
    }
    retries = sessions.org_client().meta.config.retries
    assert retries == {"mode": "adaptive", "total_max_attempts": 1}
    assert sessions.org_throttle.retry.max_attempts == 2
    monkeypatch.setenv("AWS_RETRY_MODE", "legacy")
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    sessions = AwsSessions(load_settings(overrides={}), session=moto_org.session)
    retries = sessions.client("iam", "us-east-1").meta.config.retries
    assert retries == {"mode": "standard", "total_max_attempts": 5}
    assert sessions.org_throttle.retry.max_attempts == PACED_MAX_ATTEMPTS


def test_user_max_attempts_caps_the_paced_attempts(
    moto_org: MotoOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    settings = load_settings(overrides={})
    sessions, _ = paced_sessions(moto_org, settings)
    requests = throttle_on_the_wire(sessions.org_client(), "ListRoots")
    with pytest.raises(DiscoveryError, match="ListRoots still throttled after 2 attempts"):
        discover(sessions, settings)
    assert requests[0] == 2


def test_a_throttle_that_does_not_retry_leaves_retries_to_botocore(
    moto_org: MotoOrg, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One retry layer: a Throttle without retries (tests, demo) keeps botocore's."""
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    settings = load_settings(overrides={})
    sessions = AwsSessions(settings, session=moto_org.session, org_throttle=Throttle())
    requests = throttle_on_the_wire(sessions.org_client(), "ListRoots")
    with pytest.raises(DiscoveryError, match="ListRoots still throttled after 5 attempts"):
        discover(sessions, settings)
    assert requests[0] == SDK_MAX_ATTEMPTS == 5


def throttle_on_the_wire(client, operation: str, times: int | None = None) -> list[int]:
    """Answer every (or the first `times`) `operation` request with HTTP 400
    TooManyRequestsException, below botocore's retry handler (so its retries are
    counted); returns the request count."""
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **_):
            yield b'{"__type": "TooManyRequestsException", "message": "Rate exceeded"}'

    requests = [0]

    def answer(request, **_):
        requests[0] += 1
        if times is not None and requests[0] > times:
            return None  # sent for real
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, Raw())

    client.meta.events.register_first(f"before-send.organizations.{operation}", answer)
    return requests


def test_organization_role_that_cannot_be_assumed(moto_org: MotoOrg) -> None:
    role_arn = f"arn:aws:iam::{moto_org.management_id}:role/OrgReader"
    settings = load_settings(overrides={"organization": {"role_arn": role_arn}})
    sessions = no_wait_sessions(moto_org, settings)
    inject_error(sessions.client("sts", "us-east-1"), "sts.AssumeRole", "AccessDenied", "no", 403)
    with pytest.raises(DiscoveryError) as caught:
        discover(sessions, settings)
    assert f"cannot assume {role_arn}: AccessDenied: no" in str(caught.value)
    assert "organization.role_arn" in str(caught.value)
