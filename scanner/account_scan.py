"""Scanning one account: collect it, decide it, and turn any failure into an error
outcome, so that a broken account costs itself and never the whole scan. Shared by the
scan runner, shared scans across replicas and event-driven rescans."""

from __future__ import annotations

import logging
import os
import socket
from concurrent.futures import Future
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError
from botocore.parsers import ResponseParserError

from scanner import deadline
from scanner.aws.collect import account_contexts, collect_account
from scanner.aws.session import AwsSessions
from scanner.aws.simulator import AwsSimulator, Simulator
from scanner.config import Settings
from scanner.db_retry import while_database_returns
from scanner.decide import decide_account
from scanner.engine_simulator import ENGINE_SIMULATOR_NOTE, EngineSimulator
from scanner.incremental import IncrementalScan
from scanner.model import Account, AccountOutcome, Organization
from scanner.profiles import Profile
from scanner.redact import bounded, mask_secrets
from scanner.request_context import ContextBuilder
from scanner.vocabulary import AccountStatus
from storage.locks import AccountLocks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanContext:
    """What every account of one scan is collected and decided with."""

    settings: Settings
    sessions: AwsSessions
    profiles: list[Profile]
    organization: Organization
    simulator: Simulator
    # per-account locks shared with event-driven rescans (None: no one else scans)
    locks: AccountLocks | None = None
    # fingerprints the evidence, and skips unchanged accounts (None: neither)
    incremental: IncrementalScan | None = None


def choose_simulator(settings: Settings, organization: Organization) -> Simulator:
    """settings.simulator: "aws" (iam:SimulatePrincipalPolicy) or "engine" (vaultscan's
    engine, for endpoints without a policy simulator such as moto or LocalStack)."""
    if settings.simulator == "engine":
        return EngineSimulator(organization)
    return AwsSimulator()


def simulator_note(simulator: Simulator) -> str:
    if simulator.name == "sandbox-engine":
        return ENGINE_SIMULATOR_NOTE
    return f"simulator: {simulator.name} (iam:SimulatePrincipalPolicy)"


def scan_host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def scan_account(
    context: ScanContext, account: Account, complete: Future[ScanContext] | None = None
) -> AccountOutcome:
    """Collect and decide one account; any failure becomes an error outcome.

    With `complete`, `context` holds the organization as far as it is walked yet: the
    account is read meanwhile, and its questions and verdicts wait for the whole
    organization (that wait does not count toward the account's time limit)."""
    settings = context.settings
    final = context
    # one set of request contexts for the simulator and the engine
    contexts = account_contexts(context.organization, account, settings)

    def whole_organization() -> tuple[Organization, Simulator, ContextBuilder]:
        nonlocal final, contexts
        assert complete is not None
        if final is context:
            with deadline.paused():
                final = complete.result()
            # built again from the whole organization, at the account's same scan time
            contexts = account_contexts(final.organization, account, settings, contexts.scanned_at)
        return final.organization, final.simulator, contexts

    try:
        with deadline.account_deadline(settings.account_time_limit_seconds):
            collection = collect_account(
                context.sessions,
                settings,
                context.profiles,
                account,
                context.organization,
                context.simulator,
                contexts=contexts,
                complete=whole_organization if complete is not None else None,
                unchanged=context.incremental.unchanged if context.incremental else None,
            )
        if collection.error:
            return AccountOutcome(
                account, AccountStatus.ERROR, error=collection.error, api_calls=collection.api_calls
            )
        if context.incremental and collection.unchanged_since_run is not None:
            return context.incremental.carried_outcome(collection)
        results = decide_account(
            final.organization,
            collection,
            context.profiles,
            partition=settings.organization.partition,
            regions=list(settings.regions),
            contexts=contexts,
        )
        return AccountOutcome(
            account,
            AccountStatus.OK,
            results=results,
            api_calls=collection.api_calls,
            evidence_fingerprint=collection.evidence_fingerprint,
        )
    except deadline.TimeLimitExceeded as exc:
        return AccountOutcome(account, AccountStatus.ERROR, error=str(exc))
    # endpoint unreachable, connection cut, answer cut short (an endpoint that dies while
    # answering can leave an empty or truncated body, which reaches us as a parser error)
    except (BotoCoreError, ResponseParserError) as exc:
        # the SDK quotes the raw answer: mask it (a cut-off AssumeRole answer holds keys)
        reason = bounded(mask_secrets(f"{type(exc).__name__}: {exc}"), 300)
        log.warning("AWS endpoint failure", extra={"account": account.id})
        return AccountOutcome(account, AccountStatus.ERROR, error=f"AWS endpoint failure: {reason}")
    except Exception as exc:  # a defect must cost one account, not the whole scan
        log.exception("account scan failed", extra={"account": account.id})
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return AccountOutcome(account, AccountStatus.ERROR, error=reason)


def exclusive_scan_account(
    context: ScanContext, account: Account, complete: Future[ScanContext] | None = None
) -> AccountOutcome:
    """scan_account while holding the account's lock (storage.locks.AccountLocks), so a
    scheduled scan and an event-driven rescan never read the same account at once."""
    locks = context.locks
    if locks is None:
        return scan_account(context, account, complete)
    # a database restart is waited out here too, rather than failing the whole scan
    while_database_returns(lambda: locks.acquire(account.id), what="account lock")
    try:
        return scan_account(context, account, complete)
    finally:
        locks.release(account.id)


def without_results(outcome: AccountOutcome) -> AccountOutcome:
    """The outcome without its verdicts (they are in the database)."""
    return AccountOutcome(
        outcome.account,
        outcome.status,
        error=outcome.error,
        api_calls=outcome.api_calls,
        evidence_fingerprint=outcome.evidence_fingerprint,
        carried_from_run=outcome.carried_from_run,
    )
