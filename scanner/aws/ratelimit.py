"""Client-side pacing, and the one retry policy of the scanner's AWS calls.

Retries are botocore's: every client is made in botocore's `standard` retry mode with
SDK_MAX_ATTEMPTS attempts in all (https://boto3.amazonaws.com/v1/documentation/api/latest/
guide/retries.html: exponential backoff with jitter, a per-client retry quota, throttling
and transient errors retried). A user's AWS_RETRY_MODE (standard or adaptive) and
AWS_MAX_ATTEMPTS, from the environment or the profile, take precedence. For member
accounts the scanner adds no retries on top: an always-throttled call makes exactly
SDK_MAX_ATTEMPTS requests, then fails with the throttling error, which callers report as
throttling.

AWS Organizations throttles per organization, so the whole scan shares one token bucket
per operation, sized to the documented rates (Organizations user guide, "Quotas for AWS
Organizations", throttling section:
https://docs.aws.amazon.com/organizations/latest/userguide/orgs_reference_limits.html).
Other tools share those quotas, so pacing at the documented rate can still be throttled;
botocore's retries would then bypass the bucket and keep the organization's request rate
above the quota until every attempt is refused. So the Organizations client makes one
attempt per call and its Throttle retries instead (PACED_MAX_ATTEMPTS, or the user's
AWS_MAX_ATTEMPTS): every attempt takes a token, and a throttled operation's bucket halves
its rate, then recovers step by step to the documented rate as calls succeed.

The clock, sleep and random source are injectable so tests never really wait.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoCoreConnectionError

from scanner import deadline

log = logging.getLogger(__name__)

THROTTLING_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "RequestThrottledException",
        "SlowDown",
    }
)

# requests per second, per operation, for the whole organization
ORGANIZATIONS_RATES: dict[str, float] = {
    "ListAccounts": 8.0,
    "ListAccountsForParent": 8.0,
    "ListParents": 5.0,
    "ListPoliciesForTarget": 5.0,
    # not in the documented table: held to the common 5/s of the other list calls
    "ListPolicies": 5.0,
    "ListTargetsForPolicy": 5.0,
    "ListChildren": 5.0,
    "ListOrganizationalUnitsForParent": 5.0,
    "ListRoots": 5.0,
    "DescribeOrganization": 5.0,
    "DescribePolicy": 2.0,
}


# a throttled operation's bucket: rate x SLOW_DOWN per throttle, never below rate x
# SLOWEST; each successful call gives back RECOVERY_STEP x the documented rate
SLOW_DOWN = 0.5
SLOWEST = 1 / 16
RECOVERY_STEP = 0.05


class TokenBucket:
    """`rate` tokens per second, at most `capacity` banked; acquire() waits for a token.
    slow_down() and recover() adapt the rate between rate x SLOWEST and the given rate."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.ceiling = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _reserve(self) -> float:
        """Take a token (possibly going into debt) and return how long to wait for it."""
        with self._lock:
            self._refill()
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def slow_down(self) -> None:
        """The service refused a call as too many: a slower rate, and no banked burst."""
        with self._lock:
            self._refill()
            self.rate = max(self.ceiling * SLOWEST, self.rate * SLOW_DOWN)
            self._tokens = min(self._tokens, 0.0)

    def recover(self) -> None:
        """A call went through: one step back towards the documented rate."""
        if self.rate >= self.ceiling:
            return
        with self._lock:
            self._refill()
            self.rate = min(self.ceiling, self.rate + self.ceiling * RECOVERY_STEP)

    def acquire(self) -> float:
        """Block until a token is available; returns the seconds waited."""
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass
class RetryPolicy:
    """Capped exponential backoff with full jitter for throttled calls that the SDK did
    not retry. One attempt by default: botocore retries (see the module docstring)."""

    max_attempts: int = 1
    base_delay: float = 0.5
    max_delay: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random
    # the most recent backoffs taken (bounded: the service runs for months)
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=256))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return self.random() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1))


SDK_RETRY_MODE = "standard"
SDK_MAX_ATTEMPTS = 5
# attempts per paced (Organizations) call, each through its bucket: with RetryPolicy's
# backoff (0.5 s doubling, capped at 20 s, full jitter) about 1.5 minutes of throttling
# are ridden out on average, at most about 3
PACED_MAX_ATTEMPTS = 15
_SDK_MODES = ("standard", "adaptive")


def sdk_retry_config(session: Any, attempts: int | None = None) -> Config:
    """The botocore client configuration carrying the retry policy: the user's
    AWS_RETRY_MODE / AWS_MAX_ATTEMPTS (environment or profile) when set, else standard
    mode with SDK_MAX_ATTEMPTS attempts. `legacy` mode is replaced by standard.
    `attempts` overrides the count: 1 for clients whose Throttle retries."""
    mode = _user_setting(session, "retry_mode", "AWS_RETRY_MODE")
    return Config(
        retries={
            "mode": mode if mode in _SDK_MODES else SDK_RETRY_MODE,
            "total_max_attempts": attempts or user_max_attempts(session) or SDK_MAX_ATTEMPTS,
        }
    )


def user_max_attempts(session: Any) -> int | None:
    """The user's AWS_MAX_ATTEMPTS (environment or profile), if set and valid."""
    attempts = _user_setting(session, "max_attempts", "AWS_MAX_ATTEMPTS")
    if attempts is not None and attempts.isdigit() and int(attempts) >= 1:
        return int(attempts)
    return None


def paced_retry(session: Any) -> RetryPolicy:
    """Retries of paced calls: the user's AWS_MAX_ATTEMPTS, else PACED_MAX_ATTEMPTS."""
    return RetryPolicy(max_attempts=user_max_attempts(session) or PACED_MAX_ATTEMPTS)


def _user_setting(session: Any, name: str, env_name: str) -> str | None:
    value = os.environ.get(env_name)
    if value:
        return value.strip().lower()
    try:
        scoped = session._session.get_scoped_config()  # the profile's settings
    except Exception:  # no such profile: boto3 reports that when a client is made
        return None
    value = scoped.get(name)
    return str(value).strip().lower() if value else None


def attempts_made(exc: BaseException) -> int:
    """How many requests were made for the call that raised `exc` (the SDK's, or the
    Throttle's count when it retried)."""
    counted = getattr(exc, "vaultscan_attempts", None)
    if counted is not None:
        return int(counted)
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) + 1
    return 1


def throttled_text(exc: ClientError) -> str:
    """`still throttled after N attempts (Code: message)`, for error messages."""
    error = exc.response.get("Error", {})
    return (
        f"still throttled after {attempts_made(exc)} attempts "
        f"({error.get('Code', 'Throttling')}: {error.get('Message', '')})"
    )


def is_throttling(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (
        exc.response.get("Error", {}).get("Code") in THROTTLING_CODES
    )


# what botocore's standard mode retries besides throttling (botocore.retries.standard)
TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"}
)
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """A server or connection error that a later attempt may not meet."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code")
        return status in TRANSIENT_STATUS or code in TRANSIENT_CODES
    return isinstance(exc, (BotoCoreConnectionError, HTTPClientError))


class Throttle:
    """Rate limits (per operation name) plus throttling retries for one group of calls."""

    def __init__(
        self,
        rates: dict[str, float] | None = None,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry or RetryPolicy(sleep=sleep)
        self._buckets = {
            name: TokenBucket(rate, clock=clock, sleep=sleep)
            for name, rate in (rates or {}).items()
        }

    def call(self, client: Any, operation: str, **params: Any) -> dict[str, Any]:
        """client.<operation>(**params) by its API name, rate limited and retried.

        A throttled call slows its operation's bucket. With more than one attempt allowed
        (paced calls, whose client makes one attempt), throttling and transient errors
        are retried, each attempt through the bucket; the error that ends the call counts
        every attempt (attempts_made)."""
        method = getattr(client, xform_name(operation))
        bucket = self._buckets.get(operation)
        attempt, requests = 1, 0
        while True:
            deadline.check()  # the account's time limit ends its work at the next call
            if bucket is not None:
                bucket.acquire()
            try:
                answer = method(**params)
            except (ClientError, BotoCoreConnectionError, HTTPClientError) as exc:
                requests += attempts_made(exc)
                if bucket is not None and is_throttling(exc):
                    bucket.slow_down()
                if not self._retries(exc, attempt):
                    if attempt > 1:
                        exc.vaultscan_attempts = requests  # type: ignore[union-attr]
                    raise
                self._back_off(operation, attempt, exc)
                attempt += 1
            else:
                if bucket is not None:
                    bucket.recover()
                return answer

    def _retries(self, exc: BaseException, attempt: int) -> bool:
        return attempt < self.retry.max_attempts and (is_throttling(exc) or is_transient(exc))

    def _back_off(self, operation: str, attempt: int, exc: BaseException) -> None:
        wait = self.retry.delay(attempt)
        self.retry.delays.append(wait)
        log.info(
            "throttled, retrying" if is_throttling(exc) else "transient error, retrying",
            extra={"call": operation, "attempt": attempt, "wait_s": round(wait, 3)},
        )
        left = deadline.remaining()
        self.retry.sleep(wait if left is None else max(0.0, min(wait, left)))

    def pages(
        self,
        client: Any,
        operation: str,
        *,
        token: tuple[str, str] = ("NextToken", "NextToken"),
        **params: Any,
    ) -> Iterator[dict[str, Any]]:
        """Every page of a paginated call; each request is rate limited and retried alone.

        botocore paginators cannot resume after a failed page (their resume token is only
        set at a MaxItems boundary), so a throttled page would restart the whole listing;
        this loop retries just the page. `token` is (request field, response field):
        NextToken for Organizations and Backup, Marker for IAM, (Marker, NextMarker) for KMS.
        """
        request_field, response_field = token
        request = dict(params)
        while True:
            page = self.call(client, operation, **request)
            yield page
            next_token = page.get(response_field)
            if not next_token or page.get("IsTruncated") is False or page.get("Truncated") is False:
                return
            request[request_field] = next_token
