"""Hostile wildcard patterns in any policy element are decided in milliseconds.

A backtracking regex takes minutes on `key/?*?*...?*Z` against an ordinary key ARN; anyone
who can write a policy in one member account could then stall the organization's scan.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from policy_builders import ACCOUNT, KEY, ROOT_TRUST, decide, policy, stmt

# The pattern from the report: 51 characters, 15 `?*` pairs, a final `Z` that never matches.
HOSTILE_RESOURCE = "arn:aws:kms:*:*:key/" + "?*" * 15 + "Z"
HOSTILE_ACTION = "kms:" + "?*" * 15 + "Z"
HOSTILE_VALUE = "arn:aws:iam::*:role/" + "?*" * 15 + "Z"
# Budget per decision: generous for a shared machine, still a million times less than the
# minutes a backtracking matcher needs.
BUDGET_SECONDS = 0.5


class Stalled(Exception):
    pass


@contextmanager
def hard_limit(seconds: int) -> Iterator[None]:
    """Abort the block after `seconds` (SIGALRM interrupts even a running regex)."""

    def stop(_signum: int, _frame: object) -> None:
        raise Stalled(f"still deciding after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def timed_decision(**kwargs: object) -> tuple[str, float]:
    started = time.perf_counter()
    with hard_limit(10):
        result = decide(**kwargs)
    return result.decision, time.perf_counter() - started


def test_hostile_pattern_is_exactly_51_characters() -> None:
    assert len(HOSTILE_RESOURCE) == 51


@pytest.mark.parametrize(
    "identity",
    [
        pytest.param(policy(stmt(action="kms:*", resource=HOSTILE_RESOURCE)), id="Resource"),
        pytest.param(
            policy(stmt(action="kms:*", resource=HOSTILE_RESOURCE, not_resource=True)),
            id="NotResource",
        ),
        pytest.param(policy(stmt(action=HOSTILE_ACTION)), id="Action"),
        pytest.param(
            policy(
                stmt(
                    action="kms:*",
                    Condition={"StringLike": {"aws:PrincipalArn": HOSTILE_VALUE}},
                )
            ),
            id="StringLike",
        ),
        pytest.param(
            policy(
                stmt(
                    action="kms:*",
                    Condition={"ArnLike": {"aws:PrincipalArn": HOSTILE_VALUE}},
                )
            ),
            id="ArnLike",
        ),
    ],
)
def test_hostile_pattern_is_decided_in_milliseconds(identity: dict) -> None:
    long_action = "kms:" + "GenerateDataKeyWithoutPlaintext" * 2
    long_key = KEY + "-" + "a" * 60
    long_role = f"arn:aws:iam::{ACCOUNT}:role/service-role/BackupOperatorForNightlyVaults"
    decision, seconds = timed_decision(
        identity=[identity],
        resource_policy=ROOT_TRUST,
        principal=long_role,
        action=long_action,
        resource=long_key,
    )
    assert decision in {"allowed", "implicitDeny", "explicitDeny"}
    assert seconds < BUDGET_SECONDS, f"{seconds:.3f} s"
