"""Counts every AWS API call the scanner makes, per account, in IAM action naming
(`iam:ListRoles`, `kms:GetKeyPolicy`, `sts:AssumeRole`). Tests assert exact call counts
with it, and the deployment checks list every action the scanner really performs."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from botocore.client import BaseClient

# sts:AssumeRole is made with the scanner's own credentials but on behalf of the account
# it enters, so it is counted for the account named in the role ARN.
ASSUME_ROLE = "sts:AssumeRole"
AMBIENT = "ambient"  # calls made with the ambient (not assumed) credentials


class CallRecorder:
    """Thread-safe counters filled by a botocore event handler on each client.

    `before-parameter-build` fires once per API call (not per retry attempt of botocore's
    own retry handler) and still carries the caller's parameters, which name the target
    account of sts:AssumeRole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.by_account: dict[str, Counter[str]] = {}

    def record(self, account_id: str, action: str) -> None:
        with self._lock:
            self.counts[action] += 1
            self.by_account.setdefault(account_id, Counter())[action] += 1

    def for_account(self, account_id: str) -> Counter[str]:
        """A copy of the counts for one account (empty when it made no calls)."""
        with self._lock:
            return Counter(self.by_account.get(account_id, Counter()))

    def actions(self) -> list[str]:
        """Every distinct action performed so far, sorted."""
        with self._lock:
            return sorted(self.counts)

    def attach(self, client: BaseClient, account_id: str | None) -> None:
        """Count the client's calls for `account_id` (the account of its credentials)."""
        label = account_id or AMBIENT

        def on_call(model: Any, params: dict[str, Any] | None = None, **_: Any) -> None:
            action = f"{model.service_model.signing_name}:{model.name}"
            target = label
            if action == ASSUME_ROLE and params and isinstance(params.get("RoleArn"), str):
                target = _account_of_arn(params["RoleArn"]) or label
            self.record(target, action)

        # unique_id keeps one handler per client even if attach is called twice
        client.meta.events.register(
            "before-parameter-build.*.*", on_call, unique_id=_handler_id(client)
        )

    def detach(self, client: BaseClient) -> None:
        """Stop counting the client's calls (it is about to serve another account)."""
        client.meta.events.unregister("before-parameter-build.*.*", unique_id=_handler_id(client))


def _handler_id(client: BaseClient) -> str:
    return f"vaultscan-calls-{id(client)}"


def _account_of_arn(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else None
