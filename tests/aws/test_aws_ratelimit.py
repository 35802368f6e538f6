"""Token buckets and throttling retries, with a fake clock: nothing really waits."""

from __future__ import annotations

from collections import deque

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from scanner.aws.ratelimit import (
    ORGANIZATIONS_RATES,
    PACED_MAX_ATTEMPTS,
    RetryPolicy,
    Throttle,
    TokenBucket,
    throttled_text,
)


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


class SharedQuotaOrg:
    """A fake Organizations client for one operation: the organization's quota is a
    token bucket (`quota` per second, a burst of `quota`) of which other tools use
    `others` per second; a request finding no token is throttled."""

    def __init__(self, clock: FakeClock, quota: float, others: float) -> None:
        self.clock = clock
        self.left_for_us = quota - others
        self.capacity = quota
        self.tokens = quota
        self.updated = clock()
        self.answered: list[float] = []
        self.throttled = 0

    def list_organizational_units_for_parent(self, **_: object) -> dict[str, object]:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.left_for_us)
        self.updated = now
        if self.tokens < 1:
            self.throttled += 1
            raise ClientError(
                {
                    "Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "ListOrganizationalUnitsForParent",
            )
        self.tokens -= 1
        self.answered.append(now)
        return {"OrganizationalUnits": []}


def paced_throttle(clock: FakeClock, attempts: int = PACED_MAX_ATTEMPTS) -> Throttle:
    retry = RetryPolicy(max_attempts=attempts, sleep=clock.sleep, random=lambda: 0.5)
    return Throttle(ORGANIZATIONS_RATES, retry=retry, clock=clock, sleep=clock.sleep)


def test_a_shared_quota_slows_the_bucket_and_every_call_completes() -> None:
    """Other tools use half of the 5/s quota: pacing at 5/s is throttled, the bucket
    backs off to what is left, and all calls go through."""
    clock = FakeClock()
    org = SharedQuotaOrg(clock, quota=5.0, others=2.5)
    throttle = paced_throttle(clock)
    for _ in range(300):
        throttle.call(org, "ListOrganizationalUnitsForParent", ParentId="r-1")
    assert len(org.answered) == 300
    assert org.throttled > 0
    settled = org.answered[100:]  # after the first throttles
    rate = (len(settled) - 1) / (settled[-1] - settled[0])
    assert rate == pytest.approx(2.5, rel=0.15)  # backed off to what the others left
    assert org.throttled < 0.3 * 300  # refusals stay a minority of the requests
    assert throttle._buckets["ListOrganizationalUnitsForParent"].rate < 5.0


def test_a_slowed_bucket_recovers_to_the_documented_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, clock=clock, sleep=clock.sleep)
    bucket.slow_down()
    bucket.slow_down()
    assert bucket.rate == pytest.approx(1.25)
    assert bucket.acquire() == pytest.approx(0.8)  # no banked burst after a throttle
    for _ in range(15):
        bucket.recover()
    assert bucket.rate == pytest.approx(5.0)  # 0.25/s per success, capped at the documented
    for _ in range(10):
        bucket.slow_down()
    assert bucket.rate == pytest.approx(5.0 / 16)  # never slower


def test_an_always_throttled_paced_call_fails_after_the_cap_counting_every_attempt() -> None:
    clock = FakeClock()
    org = SharedQuotaOrg(clock, quota=5.0, others=5.0)  # nothing left for the scanner
    org.tokens = 0
    throttle = paced_throttle(clock, attempts=6)
    with pytest.raises(ClientError) as caught:
        throttle.call(org, "ListOrganizationalUnitsForParent", ParentId="r-1")
    assert org.throttled == 6
    assert throttled_text(caught.value).startswith("still throttled after 6 attempts")
    assert throttle.retry.delays == deque([0.25, 0.5, 1.0, 2.0, 4.0])


def test_transient_errors_of_paced_calls_are_retried(aws_env: None) -> None:
    clock = FakeClock()
    throttle = paced_throttle(clock)
    client = boto3.Session().client("organizations", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("list_roots", "ServiceException", "oops", http_status_code=500)
        stub.add_response("list_roots", {"Roots": []})
        assert throttle.call(client, "ListRoots") == {"Roots": []}
        stub.assert_no_pending_responses()
    assert throttle._buckets["ListRoots"].rate == 5.0  # not a throttle: pace unchanged
