"""How many accounts to scan at once, from AWS's quotas instead of a fixed number.

An account's reads are a chain of calls, one after another, each a network round trip;
many accounts in flight hide that latency. By Little's law the accounts in flight are the
rate at which accounts can be entered times the time one account takes. The rate is capped
by the quota that every account passes through: sts:AssumeRole, 600 requests per second
for the scanner's account and region
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html). Member
accounts' own quotas (IAM, KMS, Backup) are per account, so they do not limit how many
accounts are read at once. A process holds about 1 MB per account in flight (its clients
and connection pools), which caps the number.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scanner.config import Settings

ASSUME_ROLE_RATE = 600.0  # per second, per calling account and region
HEADROOM = 0.8  # stay below the quota: other tools share the scanner's account
CALL_SECONDS = 0.05  # a typical AWS API round trip
MAX_AUTO = 128  # accounts in flight chosen automatically (about 1 MB each)
MIN_AUTO = 8
# Accounts held in memory at once, in flight or decided and waiting to be written. An
# account in flight holds its seven clients (about 0.3 MB each); a decided one its
# verdicts with their scenarios (about 1 MB of objects with 2 roles and 3 regions, and
# their JSON while its batch is written). A database slower than AWS must not let them
# pile up. 1,000 accounts, simulator aws: 48 held, 515 MB peak RSS; 32 held, 457 MB and
# no slower (benchmarks/README.md, Scale). This also caps the accounts in flight below a
# larger `concurrency`: 32 accounts of ~47 calls at 50 ms still enter 10+ accounts/s.
MAX_HELD = 32


def calls_per_account(settings: Settings, roles: int = 2) -> int:
    """Calls one account makes one after another: AssumeRole and the IAM read, then per
    region the vault listing and about three key reads, and with the AWS simulator three
    calls per designated role and region."""
    regions = len(settings.regions)
    simulator = 3 * roles * regions if settings.simulator == "aws" else 0
    return 2 + 4 * regions + simulator


def scan_concurrency(settings: Settings, accounts: int) -> int:
    """`settings.concurrency` when set to a number, else sized to the quotas."""
    if settings.concurrency != "auto":
        return int(settings.concurrency)
    seconds_per_account = calls_per_account(settings) * CALL_SECONDS
    wanted = math.ceil(ASSUME_ROLE_RATE * HEADROOM * seconds_per_account)
    return max(1, min(accounts, max(MIN_AUTO, min(MAX_AUTO, wanted))))


def pool_size(settings: Settings) -> int:
    """Connections for clients every scan thread shares (sts, organizations)."""
    threads = MAX_AUTO if settings.concurrency == "auto" else int(settings.concurrency)
    return max(10, threads + 16)


def idle_limit(settings: Settings) -> int:
    """Idle clients kept per service and region between accounts: one per account that
    can be in flight, so a steady scan makes no new client."""
    return MAX_AUTO if settings.concurrency == "auto" else int(settings.concurrency)
