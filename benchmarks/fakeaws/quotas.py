"""AWS request quotas as token buckets, answering the real throttling errors.

Sources (default quotas; all are token buckets refilled every second):
- Organizations, per organization and operation ("Throttling limits" in
  https://docs.aws.amazon.com/organizations/latest/userguide/orgs_reference_limits.html):
  ListAccounts/ListAccountsForParent 8/s, ListRoots, ListOrganizationalUnitsForParent,
  ListChildren, ListParents, ListPoliciesForTarget 5/s, DescribePolicy 2/s. Operations the
  table does not list (ListPolicies, ListTargetsForPolicy, DescribeOrganization) are held
  to 5/s, like vaultscan's own client-side limits (scanner/aws/ratelimit.py).
  Error: TooManyRequestsException.
- STS AssumeRole: 600 requests/s per calling account and region
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
  Error: Throttling (query protocol), "Rate exceeded".
- KMS, per account and region (request quotas table,
  https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html):
  DescribeKey 2,000/s, GetKeyPolicy 1,000/s, ListGrants and ListResourceTags 100/s.
  Error: ThrottlingException.
- Backup, per account and region (https://docs.aws.amazon.com/general/latest/gr/bk.html):
  ListBackupVaults held to a conservative 10/s. Error: ThrottlingException.
- IAM publishes no numbers ("IAM and AWS STS independently implement a token bucket
  algorithm", https://aws.amazon.com/blogs/security/how-to-monitor-and-query-iam-resources-at-scale-part-2/):
  a conservative 20/s per account shared by every IAM read, burst 20. Error: Throttling.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

ORGANIZATIONS_RATES: dict[str, float] = {
    "ListAccounts": 8.0,
    "ListAccountsForParent": 8.0,
    "ListRoots": 5.0,
    "ListOrganizationalUnitsForParent": 5.0,
    "ListChildren": 5.0,
    "ListParents": 5.0,
    "ListPoliciesForTarget": 5.0,
    "DescribePolicy": 2.0,
    "ListPolicies": 5.0,
    "ListTargetsForPolicy": 5.0,
    "DescribeOrganization": 5.0,
}
STS_ASSUME_ROLE_RATE = 600.0
KMS_RATES = {
    "DescribeKey": 2000.0,
    "GetKeyPolicy": 1000.0,
    "ListGrants": 100.0,
    "ListResourceTags": 100.0,
}
BACKUP_RATES = {"ListBackupVaults": 10.0}
IAM_RATE = 20.0  # per account, every IAM read operation together

THROTTLE_CODES = {
    "organizations": ("TooManyRequestsException", "You have sent too many requests."),
    "sts": ("Throttling", "Rate exceeded"),
    "iam": ("Throttling", "Rate exceeded"),
    "kms": ("ThrottlingException", "You have exceeded the rate at which you may call KMS."),
    "backup": ("ThrottlingException", "Rate exceeded"),
}


@dataclass
class Bucket:
    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def rate_for(service: str, operation: str) -> tuple[float, str] | None:
    """(requests per second, bucket scope) for a call, or None when not limited.
    Scope: "org" (whole organization), "caller" (the calling account and region),
    "account" (the member account), "account-region"."""
    if service == "organizations":
        return ORGANIZATIONS_RATES.get(operation, 5.0), "org"
    if service == "sts":
        return STS_ASSUME_ROLE_RATE, "caller-region"
    if service == "iam":
        return IAM_RATE, "account"
    if service == "kms" and operation in KMS_RATES:
        return KMS_RATES[operation], "account-region"
    if service == "backup" and operation in BACKUP_RATES:
        return BACKUP_RATES[operation], "account-region"
    return None


class Quotas:
    """Every bucket of the fake, created on first use; counts what it throttled."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale  # < 1 makes every quota tighter, for tests
        self._buckets: dict[tuple[str, ...], Bucket] = {}
        self._lock = threading.Lock()
        self.throttled: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def admit(self, service: str, operation: str, account: str, region: str) -> bool:
        self.calls[f"{service}:{operation}"] += 1
        found = rate_for(service, operation)
        if found is None:
            return True
        rate, scope = found
        rate *= self.scale
        key: tuple[str, ...]
        if scope == "org":
            key = (service, operation)
        elif scope == "account":
            key = (service, account)
        else:
            key = (service, operation, account, region)
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                capacity = max(1.0, rate)
                bucket = self._buckets[key] = Bucket(rate, capacity, capacity, now)
            allowed = bucket.take(now)
        if not allowed:
            self.throttled[f"{service}:{operation}"] += 1
        return allowed
