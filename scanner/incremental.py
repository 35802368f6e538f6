"""Incremental scans: an account whose evidence is unchanged since its last read keeps
that read's verdicts instead of asking the simulator and deciding again.

AWS gives IAM policies, KMS key policies and Organizations policies no version or ETag,
so the evidence is still read every time (it is the cheap part); what is skipped is what
follows from it: the simulator calls, the decisions and the writing of new verdicts (the
stored ones are copied inside the database). The evidence fingerprint covers everything
a verdict follows from: the account's roles and keys as read, its place in the
organization and the SCPs/RCPs on its path, the owners of other accounts' keys it uses,
the settings, the profiles, the simulator and vaultscan's own code. A read whose policies
use aws:CurrentTime or aws:EpochTime gets no fingerprint (its verdicts may change with
the clock alone), and `incremental.max_age_hours` bounds how old carried verdicts get.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from scanner.config import Settings
from scanner.model import AccountCollection, AccountOutcome, CheckResult, Organization
from scanner.profiles import Profile
from scanner.vocabulary import AccountStatus
from storage.incremental_queries import LatestRead, latest_reads, stored_verdicts

log = logging.getLogger(__name__)

# condition keys whose value is the time of the scan: verdicts that read them can change
# without any change to the evidence (lower case: IAM condition keys ignore case)
TIME_KEYS = ("aws:currenttime", "aws:epochtime")


@cache
def code_fingerprint() -> str:
    """sha256 of vaultscan's scanner sources: a new version decides everything afresh."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """JSON for what json does not know: the data model's dataclasses (one level: json
    comes back here for the dataclasses inside, so the text is that of
    `dataclasses.asdict` without its deep copy of every policy document), datetimes."""
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in fields(value)}
    return str(value)


def _sha(payload: Any) -> tuple[str, str]:
    """(sha256, the JSON it was taken of)."""
    text = json.dumps(payload, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest(), text


def decision_basis(settings: Settings, profiles: list[Profile], simulator_name: str) -> str:
    """What every verdict of a scan follows from besides the account's own evidence."""
    digest, _ = _sha(
        {
            "code": code_fingerprint(),
            # everything but what decides no verdict: the incremental section itself, and
            # whether replicas share the scan (a shared scan decides as a single process)
            "settings": settings.model_dump(mode="json", exclude={"incremental", "share_scans"}),
            "profiles": profiles,
            "simulator": simulator_name,
        }
    )
    return digest


def evidence_fingerprint(
    basis: str, organization: Organization, collection: AccountCollection
) -> str | None:
    """sha256 of what the account's verdicts follow from; None when they also follow from
    the time of the scan."""
    account = collection.account
    owners = {
        key.owner_account
        for keys in collection.keys.values()
        for key in keys
        if key.owner_account != account.id
    }
    digest, text = _sha(
        {
            "basis": basis,
            "organization": [
                organization.id,
                organization.management_account_id,
                organization.scps_enabled,
                organization.rcps_enabled,
            ],
            "account": account,
            "scps": organization.policy_path(account, "scp"),
            "rcps": organization.policy_path(account, "rcp"),
            "roles": collection.roles,
            "keys": collection.keys,
            "key_owners": {owner: organization.member(owner) for owner in sorted(owners)},
        }
    )
    lowered = text.lower()
    if any(key in lowered for key in TIME_KEYS):
        return None
    return digest


@dataclass(frozen=True)
class IncrementalScan:
    """One scan's view of the accounts' latest reads. With no latest reads (a full scan)
    every account is decided, and its fingerprint recorded for the next scan."""

    basis: str
    latest: Mapping[str, LatestRead]
    # an incremental scan (False: a full one, which only records fingerprints)
    skips: bool = False
    # loads carried verdicts for callers that keep them in the report (None: they do not)
    load_verdicts: Callable[[int, str], list[CheckResult]] | None = None

    def unchanged(self, collection: AccountCollection, organization: Organization) -> bool:
        """Fingerprint the collected evidence in the whole `organization`; True (and
        `unchanged_since_run` set) when it equals that of the account's latest read."""
        fingerprint = evidence_fingerprint(self.basis, organization, collection)
        collection.evidence_fingerprint = fingerprint
        latest = self.latest.get(collection.account.id)
        if fingerprint is None or latest is None or latest.evidence_fingerprint != fingerprint:
            return False
        collection.unchanged_since_run = latest.run_id
        return True

    def carried_outcome(self, collection: AccountCollection) -> AccountOutcome:
        """The outcome of an unchanged account: its latest read's verdicts stand."""
        account = collection.account
        latest = self.latest[account.id]
        results = self.load_verdicts(latest.run_id, account.id) if self.load_verdicts else []
        return AccountOutcome(
            account,
            AccountStatus.OK,
            results=results,
            api_calls=collection.api_calls,
            evidence_fingerprint=collection.evidence_fingerprint,
            carried_from_run=latest.run_id,
            decided_at=latest.decided_at,
        )


def carried_since(settings: Settings, *, full: bool) -> datetime | None:
    """The earliest decision time of verdicts a scan starting now may carry over: now less
    `incremental.max_age_hours`; None for a full scan (not `incremental.enabled`, or
    `full`). A shared scan's replicas all use the one its starting replica chose."""
    if full or not settings.incremental.enabled:
        return None
    return datetime.now(UTC) - timedelta(hours=settings.incremental.max_age_hours)


def plan_incremental(
    settings: Settings,
    engine: Engine,
    scan: tuple[list[Profile], str],
    *,
    since: datetime | None,
    keep_results: bool,
    before_run: int | None = None,
) -> IncrementalScan:
    """The scan's IncrementalScan: with `since` (carried_since), the latest reads (of runs
    before `before_run`, when given) whose verdicts were decided at or after it; with None,
    none (a full scan)."""
    profiles, simulator_name = scan
    latest: Mapping[str, LatestRead] = {}
    if since is not None:
        latest = latest_reads(engine, not_before=since, before_run=before_run)
    return IncrementalScan(
        basis=decision_basis(settings, profiles, simulator_name),
        latest=latest,
        skips=since is not None,
        load_verdicts=(
            (lambda run_id, account_id: stored_verdicts(engine, run_id, account_id))
            if keep_results
            else None
        ),
    )


def count_unchanged(outcomes: list[AccountOutcome]) -> int:
    return sum(1 for outcome in outcomes if outcome.carried_from_run is not None)


def log_unchanged(incremental: IncrementalScan, unchanged: int, accounts: int) -> int:
    """Say how many of a scan's accounts an incremental scan found unchanged; returns
    `unchanged`."""
    if incremental.skips:
        log.info(
            "incremental scan: %d of %d accounts unchanged, their verdicts carried over",
            unchanged,
            accounts,
            extra={"unchanged": unchanged, "accounts": accounts},
        )
    return unchanged
