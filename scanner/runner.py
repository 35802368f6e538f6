"""One scan, end to end: discover, then collect + decide each account in a bounded thread
pool, recording finished accounts in batches as they complete so that nothing already
decided is lost if the scan dies midway; finally close the run (totals, drift).

The caller owns the scan lock (storage.locks.scan_lock) and the database migration.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from scanner import deadline
from scanner.account_scan import (
    ScanContext,
    choose_simulator,
    exclusive_scan_account,
    scan_host,
    simulator_note,
    without_results,
)
from scanner.aws.calls import CallRecorder
from scanner.aws.organizations import discover
from scanner.aws.session import AwsSessions
from scanner.aws.simulator import Simulator
from scanner.aws.sizing import scan_concurrency
from scanner.config import Settings
from scanner.db_retry import while_database_returns
from scanner.model import Account, AccountOutcome, ScanSummary
from scanner.profiles import load_profiles
from scanner.recording import BackgroundRecorder
from scanner.scan_report import Progress, ScanReport
from scanner.shared_scan import lead_shared_scan
from scanner.signals import interruption
from scanner.vocabulary import AccountStatus, RunStatus, Trigger
from storage.locks import AccountLocks
from storage.repository import RunStateError, finish_run, mark_interrupted, start_run

# what callers import from here (the per-account parts live in scanner.account_scan)
__all__ = ["Progress", "ScanContext", "ScanReport", "run_scan"]

log = logging.getLogger(__name__)


def run_scan(
    settings: Settings,
    *,
    engine: Engine,
    trigger: str = Trigger.CLI,
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
        finish_run(engine, run_id, status=RunStatus.FAILED, error=str(exc))
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
        shared = (sessions, profiles, organization, simulator)
        return lead_shared_scan(report, accounts, settings, engine, shared, stop_event, clock)
    batch = BackgroundRecorder(engine, run_id)
    locks = AccountLocks(engine)  # event-driven rescans wait for the account, and we for them
    context = ScanContext(settings, sessions, profiles, organization, simulator, locks)
    finished = _Finished(summary, batch, len(accounts), progress, keep_results)
    try:
        stopped = _scan_accounts(context, accounts, finished, stop_event)
        batch.flush()
        summary.finished_at = datetime.now(UTC)
        if stopped:
            report.interrupted = True
            reason = f"stopped after {len(summary.outcomes)} of {len(accounts)} accounts"
            try:
                report.totals = finish_run(
                    engine, run_id, status=RunStatus.INTERRUPTED, error=reason
                )
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


@dataclass
class _Finished:
    """Where finished accounts go: the database (in batches), the summary, the progress."""

    summary: ScanSummary
    batch: BackgroundRecorder
    total: int  # accounts to scan
    progress: Progress | None = None
    keep_results: bool = True

    def add(self, outcome: AccountOutcome) -> None:
        if outcome.status == AccountStatus.ERROR:
            # as it happens, not only in the run's totals (serve logs INFO)
            log.info(
                "account not read",
                extra={
                    "account": outcome.account.id,
                    "account_name": outcome.account.name,
                    "error": outcome.error,
                },
            )
        self.batch.add(outcome)
        self.summary.outcomes.append(outcome if self.keep_results else without_results(outcome))
        if self.progress:
            self.progress(len(self.summary.outcomes), self.total, outcome.account)


# a future in flight -> its account and when it must be done (time.monotonic())
InFlight = dict[Future[AccountOutcome], tuple[Account, float]]


def _scan_accounts(
    context: ScanContext,
    accounts: list[Account],
    finished: _Finished,
    stop_event: threading.Event | None,
) -> bool:
    """Run the accounts through the pool, at most `concurrency` in flight; returns True
    when `stop_event` stopped the scan before every account was submitted."""
    if finished.progress:
        finished.progress(0, finished.total, None)
    queue = iter(accounts)
    in_flight: InFlight = {}
    limit = float(context.settings.account_time_limit_seconds)
    abandoned = 0
    stopped = False
    # Spare workers: an account abandoned at its time limit keeps its thread until its
    # next AWS call, and must not take a slot from the accounts still to scan.
    workers = scan_concurrency(context.settings, finished.total)
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
                future = pool.submit(exclusive_scan_account, context, account)
                in_flight[future] = (account, time.monotonic() + limit)
            if not in_flight:
                break
            first_deadline = min(due for _, due in in_flight.values())
            timeout = min(1.0, max(0.01, first_deadline - time.monotonic()))
            done, _ = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                in_flight.pop(future)
                finished.add(future.result())
            abandoned += _abandon_overdue(in_flight, finished, limit)
    except BaseException:
        # Ctrl-C, SIGTERM or a crash: let the accounts in flight finish (or hit their
        # limit) and keep what they found; the caller closes the run.
        pool.shutdown(wait=abandoned == 0, cancel_futures=True)
        for future in list(in_flight):
            if future.done() and not future.cancelled() and future.exception() is None:
                finished.batch.add(future.result())
        raise
    finally:
        # never wait for a worker abandoned at its time limit
        pool.shutdown(wait=abandoned == 0, cancel_futures=True)
    return stopped and len(finished.summary.outcomes) < finished.total


def _abandon_overdue(in_flight: InFlight, finished: _Finished, limit: float) -> int:
    """Record every account past its time limit as an error and stop waiting for it (its
    late answer, if any, is dropped); returns how many were abandoned."""
    now = time.monotonic()
    overdue = [(future, account) for future, (account, due) in in_flight.items() if now >= due]
    for future, account in overdue:
        del in_flight[future]
        log.warning("account time limit exceeded", extra={"account": account.id, "limit_s": limit})
        error = deadline.limit_message(limit)
        finished.add(AccountOutcome(account, AccountStatus.ERROR, error=error))
    return len(overdue)


def _close_broken_run(
    engine: Engine, run_id: int, batch: BackgroundRecorder, exc: BaseException
) -> None:
    """Keep what finished and close the run: interrupted on Ctrl-C, failed otherwise."""
    try:
        batch.flush()
    except Exception:
        log.exception("could not record the last finished accounts", extra={"run": run_id})
    try:
        if isinstance(exc, KeyboardInterrupt):
            mark_interrupted(engine, run_id, interruption(exc))
        else:
            error = f"{type(exc).__name__}: {exc}"
            finish_run(engine, run_id, status=RunStatus.FAILED, error=error)
    except Exception:
        log.exception("could not close the scan run", extra={"run": run_id})
