"""Token buckets and throttling retries, with a fake clock: nothing really waits."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from scanner.aws.ratelimit import ORGANIZATIONS_RATES, RetryPolicy, Throttle, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_bucket_allows_burst_then_paces_to_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0]  # the burst the bucket holds
    assert waits[2:] == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert clock.now == pytest.approx(102.0)  # 6 calls at 2/s after a burst of 2


def test_bucket_refills_while_idle() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    clock.now += 10  # idle: refills, but never above capacity
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:5] == [0.0] * 5 and waits[5] == pytest.approx(0.2)


def test_documented_organizations_rates() -> None:
    assert ORGANIZATIONS_RATES["ListAccounts"] == 8
    assert ORGANIZATIONS_RATES["DescribePolicy"] == 2
    for name in ("ListParents", "ListPoliciesForTarget", "ListChildren", "ListRoots"):
        assert ORGANIZATIONS_RATES[name] == 5


def test_throttle_paces_one_operation_per_its_bucket(aws_env: None) -> None:
    clock = FakeClock()
    throttle = Throttle({"ListRoots": 5.0}, clock=clock, sleep=clock.sleep)
    client = boto3.Session().client("organizations", region_name="us-east-1")
    with Stubber(client) as stub:
        for _ in range(7):
            stub.add_response("list_roots", {"Roots": []})
        for _ in range(7):
            throttle.call(client, "ListRoots")
    assert clock.sleeps == pytest.approx([0.2, 0.2])  # 5 burst, then 5/s


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, random=lambda: 1.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    half = RetryPolicy(base_delay=0.5, random=lambda: 0.5)
    assert half.delay(3) == 1.0


def test_by_default_the_scanner_adds_no_retry_to_the_sdks(aws_env: None) -> None:
    sleeps: list[float] = []
    throttle = Throttle(retry=RetryPolicy(sleep=sleeps.append))
    client = boto3.Session().client("iam", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("list_roles", "Throttling", "Rate exceeded")
        with pytest.raises(ClientError, match="Throttling"):
            throttle.call(client, "ListRoles")
    assert sleeps == []  # one attempt: botocore's standard mode retries, nothing on top


def test_explicit_retries_back_off_then_succeed(aws_env: None) -> None:
    sleeps: list[float] = []
    throttle = Throttle(retry=RetryPolicy(max_attempts=3, sleep=sleeps.append, random=lambda: 1.0))
    client = boto3.Session().client("iam", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("list_roles", "Throttling", "Rate exceeded")
        stub.add_client_error("list_roles", "ThrottlingException", "Rate exceeded")
        stub.add_response("list_roles", {"Roles": []})
        answer = throttle.call(client, "ListRoles")
        stub.assert_no_pending_responses()
    assert answer["Roles"] == []
    assert sleeps == [0.5, 1.0]


def test_other_errors_are_not_retried(aws_env: None) -> None:
    sleeps: list[float] = []
    throttle = Throttle(retry=RetryPolicy(sleep=sleeps.append))
    client = boto3.Session().client("iam", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("list_roles", "AccessDenied", "no")
        with pytest.raises(ClientError, match="AccessDenied"):
            throttle.call(client, "ListRoles")
    assert sleeps == []


def test_pages_follow_tokens_and_retry_a_single_page(aws_env: None) -> None:
    sleeps: list[float] = []
    throttle = Throttle(retry=RetryPolicy(max_attempts=2, sleep=sleeps.append))
    client = boto3.Session().client("kms", region_name="us-east-1")
    key = "arn:aws:kms:us-east-1:111122223333:key/k"
    with Stubber(client) as stub:
        stub.add_response(
            "list_grants",
            {"Grants": [{"GrantId": "g1"}], "NextMarker": "m2", "Truncated": True},
            {"KeyId": key},
        )
        stub.add_client_error("list_grants", "ThrottlingException", "slow")
        stub.add_response(
            "list_grants",
            {"Grants": [{"GrantId": "g2"}], "Truncated": False},
            {"KeyId": key, "Marker": "m2"},
        )
        pages = list(
            throttle.pages(client, "ListGrants", token=("Marker", "NextMarker"), KeyId=key)
        )
        stub.assert_no_pending_responses()
    assert [grant["GrantId"] for page in pages for grant in page["Grants"]] == ["g1", "g2"]
    assert len(sleeps) == 1  # only the second page was retried
