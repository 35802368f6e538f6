"""Carry out one coalesced plan: resolve keys and policy changes to accounts, re-decide
what stored evidence can settle, collect the rest, and record it all as one run
(trigger "event") whose drift is limited to the keys it covered.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scanner.aws.sizing import scan_concurrency
from scanner.events.coalesce import Plan
from scanner.events.redecide import OrgChange, redecide
from scanner.model import Account, AccountOutcome, Organization

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scanner.aws.session import AwsSessions
    from scanner.aws.simulator import Simulator
    from scanner.config import Settings
    from scanner.profiles import Profile
    from storage.locks import AccountLocks
    from storage.repository import RunTotals

log = logging.getLogger(__name__)


@dataclass
class RescanReport:
    run_id: int | None = None
    totals: RunTotals | None = None
    accounts_collected: list[str] = field(default_factory=list)
    accounts_redecided: list[str] = field(default_factory=list)
    checks_redecided: int = 0
    full_scan: str | None = None  # a full scan is needed (the caller starts it)
    seconds: float = 0.0


def resolve_keys(plan: Plan, engine: Engine) -> None:
    """A changed key reaches its owner and every account whose checks use it."""
    from storage.event_queries import accounts_using_key

    for change in sorted(plan.keys, key=repr):
        plan.add_rescan(change.owner_account_id)
        for account_id in accounts_using_key(engine, change.key):
            plan.add_rescan(account_id)
    plan.keys.clear()


def org_change_for(plan: Plan, sessions: AwsSessions) -> OrgChange:
    """Read every changed SCP/RCP (or target) from AWS Organizations once."""
    from scanner.aws.org_policies import read_policy_change

    change = OrgChange(note="a change of " + ", ".join(sorted(p.policy_id for p in plan.policies)))
    for item in sorted(plan.policies, key=repr):
        read = read_policy_change(sessions, item.policy_id, item.target_id)
        if read.key is None:
            log.info(
                "policy %s is a %s: no verdict depends on it", item.policy_id, read.policy_type
            )
        elif item.target_id is None and read.policy is not None:
            change.contents[item.policy_id] = read.policy
        elif item.target_id is not None and read.attached is not None:
            change.attachments.setdefault(item.target_id, {})[read.key] = read.attached
    return change


def redecide_policies(plan: Plan, engine: Engine, change: OrgChange) -> list[AccountOutcome]:
    """Re-decide stored verdicts under the changed policies; accounts the evidence cannot
    settle join the plan's rescans."""
    from storage.event_queries import accounts_below, stored_verdicts

    rows: dict[str, dict] = {}
    for policy_id in change.contents:
        rows.update((row["check_key"], row) for row in stored_verdicts(engine, policy_id=policy_id))
    for target in change.attachments:
        below = accounts_below(engine, target)
        rows.update((row["check_key"], row) for row in stored_verdicts(engine, accounts=below))
    pending = [row for row in rows.values() if row["account_id"] not in plan.rescans]
    result = redecide(pending, change)
    for account_id in sorted(result.needs_rescan):
        plan.add_rescan(account_id)
    return result.outcomes


def run_plan(
    plan: Plan,
    settings: Settings,
    engine: Engine,
    sessions: AwsSessions,
    *,
    stop_event: threading.Event | None = None,
) -> RescanReport:
    """Do the plan and store its verdicts; returns once they are stored."""
    clock = time.perf_counter()
    report = RescanReport(full_scan=plan.full_scan)
    resolve_keys(plan, engine)
    redecided: list[AccountOutcome] = []
    if plan.policies:
        redecided = redecide_policies(plan, engine, org_change_for(plan, sessions))
    collected: list[AccountOutcome] = []
    organization = None
    if plan.rescans:
        collected, organization = _collect(plan, settings, sessions, engine, stop_event)
    outcomes = collected + redecided
    report.accounts_collected = [o.account.id for o in collected]
    report.accounts_redecided = [o.account.id for o in redecided]
    report.checks_redecided = sum(len(o.results) for o in redecided)
    if outcomes:
        report.run_id, report.totals = _record(
            engine, settings, outcomes, _scope(plan, collected), organization
        )
    report.seconds = time.perf_counter() - clock
    return report


def _collect(
    plan: Plan,
    settings: Settings,
    sessions: AwsSessions,
    engine: Engine,
    stop_event: threading.Event | None,
) -> tuple[list[AccountOutcome], Organization]:
    from scanner.account_scan import choose_simulator
    from scanner.aws.organizations import discover
    from scanner.profiles import load_profiles
    from storage.locks import AccountLocks

    organization = discover(sessions, settings)
    wanted = [a for a in organization.accounts if a.id in plan.rescans]
    skipped = sorted(set(plan.rescans) - {a.id for a in wanted})
    if skipped:
        log.info("event rescan skips accounts not selected for scanning: %s", ", ".join(skipped))
    if not wanted:
        return [], organization
    profiles = load_profiles(settings)
    simulator = choose_simulator(settings, organization)
    locks = AccountLocks(engine)
    try:
        with ThreadPoolExecutor(
            max_workers=scan_concurrency(settings, len(wanted)), thread_name_prefix="event-scan"
        ) as pool:
            futures = [
                pool.submit(
                    _scan_one,
                    locks,
                    stop_event,
                    sessions,
                    settings,
                    profiles,
                    a,
                    organization,
                    simulator,
                )
                for a in wanted
            ]
            outcomes = [f.result() for f in futures]
    finally:
        locks.close()
    return [o for o in outcomes if o is not None], organization


def _scan_one(
    locks: AccountLocks,
    stop_event: threading.Event | None,
    sessions: AwsSessions,
    settings: Settings,
    profiles: list[Profile],
    account: Account,
    organization: Organization,
    simulator: Simulator,
) -> AccountOutcome | None:
    from scanner.account_scan import ScanContext, scan_account

    if not locks.acquire(account.id, stop=stop_event):
        return None  # stopping while a scheduled scan held the account
    try:
        context = ScanContext(settings, sessions, profiles, organization, simulator)
        return scan_account(context, account)
    finally:
        locks.release(account.id)


def _scope(plan: Plan, collected: list[AccountOutcome]) -> list[dict[str, str | None]]:
    """The keys this run may declare gone: the collected accounts (or their named roles).
    Re-decided checks are only those the change touched, so they never declare anything
    gone."""
    scope: list[dict[str, str | None]] = []
    for outcome in collected:
        roles = plan.rescans.get(outcome.account.id)
        if roles is None:
            scope.append({"account_id": outcome.account.id, "role": None})
        else:
            scope.extend({"account_id": outcome.account.id, "role": r} for r in sorted(roles))
    return scope


def _record(
    engine: Engine,
    settings: Settings,
    outcomes: list[AccountOutcome],
    scope: list[dict[str, str | None]],
    organization: Organization | None,
) -> tuple[int, RunTotals]:
    from scanner.account_scan import scan_host
    from scanner.vocabulary import Trigger
    from storage.repository import finish_run, record_outcomes, start_run

    run_id = start_run(
        engine,
        trigger=Trigger.EVENT,
        host=scan_host(),
        config_fingerprint=settings.fingerprint(),
        simulator_source="event",
        accounts_total=len({o.account.id for o in outcomes}),
    )
    try:
        record_outcomes(engine, run_id, outcomes)
        return run_id, finish_run(engine, run_id, scope=scope)
    except BaseException as exc:
        finish_run(engine, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
