"""One scan, end to end: discover, then collect + decide each account in a bounded thread
pool, recording finished accounts in batches as they complete so that nothing already
decided is lost if the scan dies midway; finally close the run (totals, drift).

The caller owns the scan lock (storage.locks.scan_lock) and the database migration.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError

from scanner import deadline
from scanner.aws.sizing import scan_concurrency
from scanner.db_retry import while_database_returns
from scanner.model import Account, AccountOutcome, Organization, ScanSummary
from scanner.recording import BackgroundRecorder

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scanner.aws.calls import CallRecorder
    from scanner.aws.session import AwsSessions
    from scanner.aws.simulator import Simulator
    from scanner.config import Settings
    from scanner.profiles import Profile
    from storage.locks import AccountLocks
    from storage.repository import RunTotals

log = logging.getLogger(__name__)

Progress = Callable[[int, int, Account | None], None]


@dataclass
class ScanReport:
    run_id: int
    summary: ScanSummary
    totals: RunTotals | None
    organization: Organization | None = None
    simulator_name: str = ""
    simulator_note: str = ""  # e.g. that the engine stood in for AWS's simulator
    interrupted: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_checks(self) -> int:
        return sum(1 for result in self.summary.results if result.status == "fail")


def choose_simulator(settings: Settings, organization: Organization) -> Simulator:
    """settings.simulator: "aws" (iam:SimulatePrincipalPolicy) or "engine" (vaultscan's
    engine, for endpoints without a policy simulator such as moto or LocalStack)."""
    if settings.simulator == "engine":
        from scanner.engine_simulator import EngineSimulator

        return EngineSimulator(organization)
    from scanner.aws.simulator import AwsSimulator

    return AwsSimulator()


def simulator_note(simulator: Simulator) -> str:
    if simulator.name == "sandbox-engine":
        from scanner.engine_simulator import ENGINE_SIMULATOR_NOTE

        return ENGINE_SIMULATOR_NOTE
    return f"simulator: {simulator.name} (iam:SimulatePrincipalPolicy)"


def scan_host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def scan_account(
    sessions: AwsSessions,
    settings: Settings,
    profiles: list[Profile],
    account: Account,
    organization: Organization,
    simulator: Simulator,
) -> AccountOutcome:
    """Collect and decide one account; any failure becomes an error outcome."""
    from scanner.aws.collect import collect_account
    from scanner.decide import decide_account

    try:
        with deadline.account_deadline(settings.account_time_limit_seconds):
            collection = collect_account(
                sessions, settings, profiles, account, organization, simulator
            )
        if collection.error:
            return AccountOutcome(
                account, "error", error=collection.error, api_calls=collection.api_calls
            )
        results = decide_account(
            organization,
            collection,
            profiles,
            partition=settings.organization.partition,
            regions=list(settings.regions),
        )
        return AccountOutcome(account, "ok", results=results, api_calls=collection.api_calls)
    except deadline.TimeLimitExceeded as exc:
        return AccountOutcome(account, "error", error=str(exc))
    except BotoCoreError as exc:  # endpoint unreachable, connection cut, answer cut short
        from scanner.redact import bounded, mask_secrets

        # the SDK quotes the raw answer: mask it (a cut-off AssumeRole answer holds keys)
        reason = bounded(mask_secrets(f"{type(exc).__name__}: {exc}"), 300)
        log.warning("AWS endpoint failure", extra={"account": account.id})
        return AccountOutcome(account, "error", error=f"AWS endpoint failure: {reason}")
    except Exception as exc:  # a defect must cost one account, not the whole scan
        log.exception("account scan failed", extra={"account": account.id})
        reason = f"internal error: {type(exc).__name__}: {exc}"
        return AccountOutcome(account, "error", error=reason)


def exclusive_scan_account(
    locks: AccountLocks | None,
    sessions: AwsSessions,
    settings: Settings,
    profiles: list[Profile],
    account: Account,
    organization: Organization,
    simulator: Simulator,
) -> AccountOutcome:
    """scan_account while holding the account's lock (storage.locks.AccountLocks), so a
    scheduled scan and an event-driven rescan never read the same account at once."""
    if locks is None:
        return scan_account(sessions, settings, profiles, account, organization, simulator)
    # a database restart is waited out here too, rather than failing the whole scan
    while_database_returns(lambda: locks.acquire(account.id), what="account lock")
    try:
        return scan_account(sessions, settings, profiles, account, organization, simulator)
    finally:
        locks.release(account.id)


def run_scan(
    settings: Settings,
    *,
    engine: Engine,
    trigger: str = "cli",
    sessions: AwsSessions | None = None,
    simulator: Simulator | None = None,
    progress: Progress | None = None,
    stop_event: threading.Event | None = None,
    recorder: CallRecorder | None = None,
    keep_results: bool = True,
) -> ScanReport:
    """Scan every selected account and record the run. Raises (after marking the run
    failed) when the organization cannot be read or the database fails.

    With `keep_results=False` the verdicts are only written to the database, not kept in
    the report: a long-running service scanning 10,000 accounts need not hold them all."""
    from scanner.aws.organizations import discover
    from scanner.aws.session import AwsSessions
    from scanner.profiles import load_profiles
    from storage.repository import RunStateError, finish_run, mark_interrupted, start_run

    clock = time.perf_counter()
    started_at = datetime.now(UTC)
    sessions = sessions or AwsSessions(settings, recorder=recorder)
    fingerprint = settings.fingerprint()
    source = (
        simulator.name
        if simulator
        else {"engine": "sandbox-engine"}.get(settings.simulator, settings.simulator)
    )
    try:
        profiles = load_profiles(settings)
        organization = discover(sessions, settings)
    except Exception as exc:
        # the run is recorded as failed so dashboards see the scan broke
        run_id = start_run(
            engine,
            trigger=trigger,
            host=scan_host(),
            config_fingerprint=fingerprint,
            simulator_source=source,
            accounts_total=0,
        )
        finish_run(engine, run_id, status="failed", error=str(exc))
        raise
    simulator = simulator or choose_simulator(settings, organization)
    accounts = [
        account
        for account in organization.accounts
        if account.id != organization.management_account_id
        or settings.member.scan_management_account
    ]
    run_id = start_run(
        engine,
        trigger=trigger,
        host=scan_host(),
        config_fingerprint=fingerprint,
        simulator_source=simulator.name,
        accounts_total=len(accounts),
    )
    summary = ScanSummary(
        started_at=started_at,
        finished_at=None,
        outcomes=[],
        config_fingerprint=fingerprint,
        simulator_source=simulator.name,
    )
    report = ScanReport(
        run_id=run_id,
        summary=summary,
        totals=None,
        organization=organization,
        simulator_name=simulator.name,
        simulator_note=simulator_note(simulator),
    )
    if settings.share_scans:
        from scanner.shared_scan import lead_shared_scan

        shared = (sessions, profiles, organization, simulator)
        return lead_shared_scan(report, accounts, settings, engine, shared, stop_event, clock)
    from storage.locks import AccountLocks

    batch = BackgroundRecorder(engine, run_id)
    locks = AccountLocks(engine)  # event-driven rescans wait for the account, and we for them
    try:
        stopped = _scan_accounts(
            accounts,
            settings,
            sessions,
            profiles,
            organization,
            simulator,
            summary,
            batch,
            progress,
            stop_event,
            keep_results,
            locks,
        )
        batch.flush()
        summary.finished_at = datetime.now(UTC)
        if stopped:
            report.interrupted = True
            reason = f"stopped after {len(summary.outcomes)} of {len(accounts)} accounts"
            try:
                report.totals = finish_run(engine, run_id, status="interrupted", error=reason)
            except RunStateError:  # already closed elsewhere (e.g. marked abandoned)
                mark_interrupted(engine, run_id, reason)
        else:
            report.totals = while_database_returns(
                lambda: finish_run(engine, run_id), what="run totals"
            )
    except BaseException as exc:
        _close_broken_run(engine, run_id, batch, exc)
        raise
    finally:
        batch.stop()
        locks.close()
    report.seconds = time.perf_counter() - clock
    return report


def _scan_accounts(
    accounts: list[Account],
    settings: Settings,
    sessions: AwsSessions,
    profiles: list[Profile],
    organization: Organization,
    simulator: Simulator,
    summary: ScanSummary,
    batch: BackgroundRecorder,
    progress: Progress | None,
    stop_event: threading.Event | None,
    keep_results: bool = True,
    locks: AccountLocks | None = None,
) -> bool:
    """Run the accounts through the pool, at most `concurrency` in flight; returns True
    when `stop_event` stopped the scan before every account was submitted."""
    total = len(accounts)
    if progress:
        progress(0, total, None)
    queue = iter(accounts)
    in_flight: dict[Future[AccountOutcome], tuple[Account, float]] = {}
    limit = float(settings.account_time_limit_seconds)
    abandoned = 0
    stopped = False

    def record(outcome: AccountOutcome) -> None:
        if outcome.status == "error":
            # as it happens, not only in the run's totals (serve logs INFO)
            log.info(
                "account not read",
                extra={
                    "account": outcome.account.id,
                    "account_name": outcome.account.name,
                    "error": outcome.error,
                },
            )
        batch.add(outcome)
        summary.outcomes.append(outcome if keep_results else _without_results(outcome))
        if progress:
            progress(len(summary.outcomes), total, outcome.account)

    # Spare workers: an account abandoned at its time limit keeps its thread until its
    # next AWS call, and must not take a slot from the accounts still to scan.
    workers = scan_concurrency(settings, total)
    pool = ThreadPoolExecutor(max_workers=2 * workers, thread_name_prefix="scan")
    try:
        while True:
            while len(in_flight) < workers and not stopped:
                if stop_event is not None and stop_event.is_set():
                    stopped = True
                    break
                account = next(queue, None)
                if account is None:
                    break
                future = pool.submit(
                    exclusive_scan_account,
                    locks,
                    sessions,
                    settings,
                    profiles,
                    account,
                    organization,
                    simulator,
                )
                in_flight[future] = (account, time.monotonic() + limit)
            if not in_flight:
                break
            first_deadline = min(due for _, due in in_flight.values())
            timeout = min(1.0, max(0.01, first_deadline - time.monotonic()))
            done, _ = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                in_flight.pop(future)
                record(future.result())
            now = time.monotonic()
            for future, (account, due) in list(in_flight.items()):
                if now >= due:
                    # the account is recorded now; its late answer, if any, is dropped
                    del in_flight[future]
                    abandoned += 1
                    log.warning(
                        "account time limit exceeded",
                        extra={"account": account.id, "limit_s": limit},
                    )
                    record(AccountOutcome(account, "error", error=deadline.limit_message(limit)))
    except BaseException:
        # Ctrl-C, SIGTERM or a crash: let the accounts in flight finish (or hit their
        # limit) and keep what they found; the caller closes the run.
        pool.shutdown(wait=abandoned == 0, cancel_futures=True)
        for future, _ in list(in_flight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                batch.add(future.result())
        raise
    finally:
        # never wait for a worker abandoned at its time limit
        pool.shutdown(wait=abandoned == 0, cancel_futures=True)
    return stopped and len(summary.outcomes) < total


def _without_results(outcome: AccountOutcome) -> AccountOutcome:
    return AccountOutcome(
        outcome.account, outcome.status, error=outcome.error, api_calls=outcome.api_calls
    )


def _close_broken_run(
    engine: Engine, run_id: int, batch: BackgroundRecorder, exc: BaseException
) -> None:
    """Keep what finished and close the run: interrupted on Ctrl-C, failed otherwise."""
    from storage.repository import finish_run, mark_interrupted

    try:
        batch.flush()
    except Exception:
        log.exception("could not record the last finished accounts", extra={"run": run_id})
    try:
        if isinstance(exc, KeyboardInterrupt):
            from scanner.signals import interruption

            mark_interrupted(engine, run_id, interruption(exc))
        else:
            finish_run(engine, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
    except Exception:
        log.exception("could not close the scan run", extra={"run": run_id})
