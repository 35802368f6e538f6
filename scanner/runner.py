"""One scan, end to end: walk the organization and collect + decide each account in a
bounded thread pool, recording finished accounts in batches as they complete so that
nothing already decided is lost if the scan dies midway; finally close the run (totals,
drift).

Accounts are read as soon as the walk lists them (scanner.walk_feed): their roles and keys
while the rest of the tree and the SCP/RCP attachments are still listed, their questions
and verdicts once the whole organization is known, which is also when the run is recorded.
A shared scan (`share_scans`) walks first, since it hands the whole organization to the
other replicas.

The caller owns the scan lock (storage.locks.scan_lock) and the database migration.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
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
from scanner.aws.sizing import MAX_HELD, scan_concurrency
from scanner.config import Settings
from scanner.db_retry import while_database_returns
from scanner.incremental import carried_since, count_unchanged, log_unchanged, plan_incremental
from scanner.model import Account, AccountOutcome, Organization, ScanSummary
from scanner.profiles import Profile, load_profiles
from scanner.recording import BackgroundRecorder
from scanner.scan_gc import scan_collection_pace
from scanner.scan_report import Progress, ScanReport
from scanner.shared_scan import lead_shared_scan
from scanner.signals import interruption
from scanner.vocabulary import AccountStatus, RunStatus, Trigger
from scanner.walk_feed import WalkFeed
from storage.locks import AccountLocks
from storage.repository import RunStateError, finish_run, mark_interrupted, start_run

# what callers import from here (the per-account parts live in scanner.account_scan)
__all__ = ["Progress", "ScanContext", "ScanReport", "run_scan"]

log = logging.getLogger(__name__)

# From this many accounts on, a writer process records them (scanner.writer_process): its
# start (about a second of imports) is then small beside the interpreter lock it spares.
WRITER_PROCESS_MIN_ACCOUNTS = 100


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
    full: bool = False,
) -> ScanReport:
    """Scan every selected account and record the run. Raises (after marking the run
    failed) when the organization cannot be read or the database fails.

    With `keep_results=False` the verdicts are only written to the database, not kept in
    the report: a long-running service scanning 10,000 accounts need not hold them all.
    `full` decides every account afresh even with `incremental.enabled`."""
    with scan_collection_pace():  # a scan's many short-lived objects die young
        sessions = sessions or AwsSessions(settings, recorder=recorder)
        run = _Run(settings, engine, trigger, simulator, progress, keep_results)
        run.full = full
        try:
            profiles = load_profiles(settings)
            if settings.share_scans:
                organization = discover(sessions, settings)
        except Exception as exc:
            run.failed_before_start(exc)
            raise
        if settings.share_scans:
            report, accounts = run.open(organization)
            assert run.simulator is not None  # chosen when the run opened
            shared = (sessions, profiles, organization, run.simulator)
            since = carried_since(settings, full=run.full)
            return lead_shared_scan(
                report, accounts, settings, engine, shared, stop_event, run.clock, since=since
            )
        return _pipelined_scan(run, sessions, profiles, stop_event)


class _Run:
    """The run's record: opened once the organization is known, closed at the end."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        trigger: str,
        simulator: Simulator | None,
        progress: Progress | None,
        keep_results: bool,
    ) -> None:
        self.clock = time.perf_counter()
        self.started_at = datetime.now(UTC)
        self.settings = settings
        self.engine = engine
        self.trigger = trigger
        self.simulator = simulator
        self.fingerprint = settings.fingerprint()
        self.progress = progress
        self.keep_results = keep_results
        self.full = False  # decide every account afresh (scanner.incremental)

    def failed_before_start(self, exc: BaseException) -> None:
        """The run is recorded as failed so dashboards see the scan broke."""
        source = (
            self.simulator.name
            if self.simulator
            else {"engine": "sandbox-engine"}.get(self.settings.simulator, self.settings.simulator)
        )
        run_id = start_run(
            self.engine,
            trigger=self.trigger,
            host=scan_host(),
            config_fingerprint=self.fingerprint,
            simulator_source=source,
            accounts_total=0,
        )
        finish_run(self.engine, run_id, status=RunStatus.FAILED, error=str(exc))

    def open(self, organization: Organization) -> tuple[ScanReport, list[Account]]:
        self.simulator = self.simulator or choose_simulator(self.settings, organization)
        accounts = [
            account
            for account in organization.accounts
            if account.id != organization.management_account_id
            or self.settings.member.scan_management_account
        ]
        run_id = start_run(
            self.engine,
            trigger=self.trigger,
            host=scan_host(),
            config_fingerprint=self.fingerprint,
            simulator_source=self.simulator.name,
            accounts_total=len(accounts),
        )
        summary = ScanSummary(
            started_at=self.started_at,
            finished_at=None,
            outcomes=[],
            config_fingerprint=self.fingerprint,
            simulator_source=self.simulator.name,
        )
        report = ScanReport(
            run_id=run_id,
            summary=summary,
            totals=None,
            organization=organization,
            simulator_name=self.simulator.name,
            simulator_note=simulator_note(self.simulator),
        )
        return report, accounts

    def close(self, report: ScanReport, stopped: bool, total: int) -> None:
        summary, engine, run_id = report.summary, self.engine, report.run_id
        summary.finished_at = datetime.now(UTC)
        if stopped:
            report.interrupted = True
            reason = f"stopped after {len(summary.outcomes)} of {total} accounts"
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
        report.seconds = time.perf_counter() - self.clock


def _pipelined_scan(
    run: _Run,
    sessions: AwsSessions,
    profiles: list[Profile],
    stop_event: threading.Event | None,
) -> ScanReport:
    """Accounts are read as the walk finds them; their questions and verdicts wait for
    the whole organization (its SCPs/RCPs), and the run is recorded once it is known."""
    locks = AccountLocks(run.engine)  # event-driven rescans wait for the account
    # what the accounts found early are read with; the whole one replaces it
    walking = Organization(None, [])
    early_simulator = run.simulator or choose_simulator(run.settings, walking)
    incremental = plan_incremental(
        run.settings,
        run.engine,
        (profiles, early_simulator.name),
        since=carried_since(run.settings, full=run.full),
        keep_results=run.keep_results,
    )
    early = ScanContext(
        run.settings,
        sessions,
        profiles,
        walking,
        early_simulator,
        locks,
        incremental=incremental,
    )
    scan = _Pipeline(run, early, WalkFeed(sessions, run.settings).start())
    try:
        stopped = _scan_accounts(scan, stop_event)
        report = scan.report_when_walked()
        scan.finished.flush()
        outcomes = report.summary.outcomes
        report.unchanged_accounts = log_unchanged(
            incremental, count_unchanged(outcomes), len(outcomes)
        )
        run.close(report, stopped, scan.finished.total)
    except BaseException as exc:
        scan.abort(exc)
        raise
    finally:
        scan.finished.stop()
        locks.close()
    return report


class _Pipeline:
    """One scan's accounts from the walk to the database."""

    def __init__(self, run: _Run, early: ScanContext, feed: WalkFeed) -> None:
        self.run = run
        self.early = early
        self.feed = feed
        self.complete: Future[ScanContext] = Future()  # the context with the whole organization
        self.report: ScanReport | None = None
        self.finished = _Finished(run.progress, run.keep_results)
        self.workers = scan_concurrency(run.settings, MAX_ACCOUNTS)
        self.limit = float(run.settings.account_time_limit_seconds)

    def submit(self, pool: ThreadPoolExecutor, in_flight: InFlight) -> None:
        """Start accounts while there is room: at most `workers` in flight, and at most
        MAX_HELD accounts held in memory, those waiting for the writer included."""
        while len(in_flight) < self.workers and (
            len(in_flight) + self.finished.backlog() < MAX_HELD
        ):
            account = self.feed.take()
            if account is None:
                return
            if self.complete.done():  # the walk is over: the whole organization
                future = pool.submit(exclusive_scan_account, self.complete.result(), account)
            else:
                future = pool.submit(exclusive_scan_account, self.early, account, self.complete)
            in_flight[future] = (account, time.monotonic() + self.limit)

    def open_when_walked(self, in_flight: InFlight) -> None:
        """Once the walk is done: record the run and let the accounts waiting for the
        whole organization go on (raises the walk's error)."""
        if self.report is not None or not self.feed.walked:
            return
        try:
            organization = self.feed.organization.result()
        except Exception as exc:
            self.run.failed_before_start(exc)
            raise
        self.report, accounts = self.run.open(organization)
        separate = len(accounts) >= WRITER_PROCESS_MIN_ACCOUNTS
        batch = BackgroundRecorder(self.run.engine, self.report.run_id, separate_process=separate)
        self.finished.open(self.report.summary, batch, len(accounts))
        assert self.run.simulator is not None  # chosen when the run opened
        whole = replace(self.early, organization=organization, simulator=self.run.simulator)
        self.complete.set_result(whole)
        # waiting for the walk did not count toward an account's time limit
        renewed = time.monotonic() + self.limit
        for future, (account, due) in in_flight.items():
            in_flight[future] = (account, max(due, renewed))

    def report_when_walked(self) -> ScanReport:
        while self.report is None:  # stopped before the walk ended: it still ends
            self.feed.wait(1.0)
            self.open_when_walked({})
        return self.report

    def done(self, in_flight: InFlight, stopped: bool) -> bool:
        return not in_flight and (stopped or self.feed.exhausted()) and self.report is not None

    def abort(self, exc: BaseException) -> None:
        """A crash, Ctrl-C or a failed walk: accounts waiting for the organization stop,
        what finished is kept and the run closed."""
        if not self.complete.done():
            self.complete.set_exception(exc)
        if self.report is not None:
            _close_broken_run(self.run.engine, self.report.run_id, self.finished.batch, exc)


# no fixed number of accounts is known while the walk goes on
MAX_ACCOUNTS = 1 << 30


class _Finished:
    """Where finished accounts go: the database (in batches), the summary, the progress;
    held until the run is recorded (accounts that failed before the walk ended)."""

    def __init__(self, progress: Progress | None, keep_results: bool) -> None:
        self.progress = progress
        self.keep_results = keep_results
        self.summary: ScanSummary | None = None
        self.batch: BackgroundRecorder | None = None
        self.total = 0  # accounts to scan
        self.held: list[AccountOutcome] = []

    def open(self, summary: ScanSummary, batch: BackgroundRecorder, total: int) -> None:
        self.summary, self.batch, self.total = summary, batch, total
        if self.progress:
            self.progress(0, total, None)
        held, self.held = self.held, []
        for outcome in held:
            self._record(outcome)

    def backlog(self) -> int:
        """Finished accounts not yet written."""
        return len(self.batch.pending) if self.batch is not None else len(self.held)

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
        self._record(outcome)

    def _record(self, outcome: AccountOutcome) -> None:
        if self.batch is None or self.summary is None:
            self.held.append(outcome)
            return
        self.batch.add(outcome)
        self.summary.outcomes.append(outcome if self.keep_results else without_results(outcome))
        if self.progress:
            self.progress(len(self.summary.outcomes), self.total, outcome.account)

    def flush(self) -> None:
        if self.batch is not None:
            self.batch.flush()

    def stop(self) -> None:
        if self.batch is not None:
            self.batch.stop()


# a future in flight -> its account and when it must be done (time.monotonic())
InFlight = dict[Future[AccountOutcome], tuple[Account, float]]


def _scan_accounts(scan: _Pipeline, stop_event: threading.Event | None) -> bool:
    """Run the accounts through the pool as the walk hands them out, at most `workers` in
    flight; returns True when `stop_event` stopped the scan before every account was
    submitted."""
    in_flight: InFlight = {}
    abandoned = 0
    stopped = False
    # Spare workers: an account abandoned at its time limit keeps its thread until its
    # next AWS call, and must not take a slot from the accounts still to scan.
    pool = ThreadPoolExecutor(max_workers=2 * scan.workers, thread_name_prefix="scan")
    try:
        while True:
            stopped = stopped or (stop_event is not None and stop_event.is_set())
            if not stopped:
                scan.submit(pool, in_flight)
            scan.open_when_walked(in_flight)
            if scan.done(in_flight, stopped):
                break
            _wait_for_any(scan, in_flight)
            abandoned += _abandon_overdue(in_flight, scan.finished, scan.limit)
    except BaseException as exc:
        # Ctrl-C, SIGTERM, a crash or a failed walk: let the accounts in flight finish (or
        # hit their limit) and keep what they found; the caller closes the run.
        if not scan.complete.done():  # accounts waiting for the whole organization stop
            scan.complete.set_exception(exc)
        pool.shutdown(wait=abandoned == 0, cancel_futures=True)
        for future in list(in_flight):
            if future.done() and not future.cancelled() and future.exception() is None:
                scan.finished.add(future.result())
        raise
    finally:
        # never wait for a worker abandoned at its time limit
        pool.shutdown(wait=abandoned == 0, cancel_futures=True)
    summary = scan.finished.summary
    return stopped and (summary is None or len(summary.outcomes) < scan.finished.total)


def _wait_for_any(scan: _Pipeline, in_flight: InFlight) -> None:
    """Until an account finishes, one is due, or (while the walk goes on) a moment has
    passed for the walk to find more."""
    if not in_flight:
        scan.feed.wait(WALK_POLL_SECONDS)
        return
    first_deadline = min(due for _, due in in_flight.values())
    timeout = min(1.0, max(0.01, first_deadline - time.monotonic()))
    if not scan.feed.exhausted():
        timeout = min(timeout, WALK_POLL_SECONDS)
    done, _ = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
    for future in done:
        in_flight.pop(future)
        scan.finished.add(future.result())


# how often the scan looks for accounts the walk found while accounts are in flight
WALK_POLL_SECONDS = 0.05


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
    engine: Engine, run_id: int, batch: BackgroundRecorder | None, exc: BaseException
) -> None:
    """Keep what finished and close the run: interrupted on Ctrl-C, failed otherwise."""
    try:
        if batch is not None:
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
