"""Scans shared by several replicas through PostgreSQL (storage/work_queue.py).

The replica that starts a scan discovers the organization, enqueues its accounts and
stores the organization; then it, and every replica that joins, claims accounts in small
batches, scans them, and records each account's verdicts in the transaction that marks it
done. Leases are renewed while an account is scanned; a replica that dies stops renewing,
its accounts' leases run out and another replica takes them over. The starting replica
waits until every account is done, then closes the run (totals, drift).

An incremental scan (scanner.incremental) is incremental on every replica alike: the
starting replica stores how old carried verdicts may be (or that the scan is full), and
each replica compares an account's fingerprint, taken in the stored organization, with
the account's latest read before the run, so it reaches the decision a single process
would, also for an account it took over from a replica that died.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from scanner.account_scan import (
    ScanContext,
    choose_simulator,
    scan_account,
    scan_host,
    without_results,
)
from scanner.aws.sizing import scan_concurrency
from scanner.incremental import IncrementalScan, log_unchanged, plan_incremental
from scanner.recording import BackgroundRecorder

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scanner.aws.session import AwsSessions
    from scanner.aws.simulator import Simulator
    from scanner.config import Settings
    from scanner.model import Account, AccountOutcome, Organization
    from scanner.profiles import Profile
    from scanner.scan_report import ScanReport

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0  # an account a dead replica held is taken over after this long
POLL_SECONDS = 1.0  # while other replicas finish their last accounts


class ClaimedRecorder(BackgroundRecorder):
    """Writes outcomes only for accounts this replica still holds, marking them done."""

    def __init__(self, engine: Engine, run_id: int, host: str, held: set[str]) -> None:
        self.host = host
        self.held = held
        self.held_lock = threading.Lock()
        self.recorded = 0
        super().__init__(engine, run_id)

    def _write(self, batch: list[AccountOutcome]) -> None:
        from storage.work_queue import record_claimed

        recorded = record_claimed(self.engine, self.run_id, self.host, batch)
        lost = {outcome.account.id for outcome in batch} - set(recorded)
        if lost:
            log.warning("accounts taken over by another replica: %s", ", ".join(sorted(lost)))
        with self.held_lock:
            self.held.difference_update(outcome.account.id for outcome in batch)
        self.recorded += len(recorded)


@dataclass
class Worker:
    """Everything needed to scan accounts of one shared run in this process."""

    settings: Settings
    engine: Engine
    sessions: AwsSessions
    profiles: list[Profile]
    organization: Organization
    simulator: Simulator
    run_id: int
    host: str
    # the run's incremental plan (shared_incremental; None: neither fingerprints nor skips)
    incremental: IncrementalScan | None = None
    lease_seconds: float = 0.0  # 0: LEASE_SECONDS

    def __post_init__(self) -> None:
        self.lease_seconds = self.lease_seconds or LEASE_SECONDS

    def run(self, stop_event: threading.Event | None = None) -> list[AccountOutcome]:
        """Claim and scan until the run has no account left that anybody could take;
        returns this replica's outcomes (without their results)."""
        accounts = {account.id: account for account in self.organization.accounts}
        workers = scan_concurrency(self.settings, len(accounts))
        held: set[str] = set()
        recorder = ClaimedRecorder(self.engine, self.run_id, self.host, held)
        heartbeat = _Heartbeat(self, held, recorder.held_lock)
        outcomes: list[AccountOutcome] = []
        in_flight: dict[Future[AccountOutcome], Account] = {}
        try:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shared") as pool:
                while not (stop_event is not None and stop_event.is_set()):
                    self._fill(pool, in_flight, accounts, held, recorder, workers)
                    if not in_flight:
                        recorder.flush()
                        if self._finished():
                            break
                        time.sleep(POLL_SECONDS)  # others hold the rest; take over if they die
                        continue
                    done, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in done:
                        in_flight.pop(future)
                        outcome = future.result()
                        recorder.add(outcome)
                        outcomes.append(without_results(outcome))
            recorder.flush()
        finally:
            heartbeat.stop()
            recorder.stop()
        return outcomes

    def _fill(self, pool, in_flight, accounts, held, recorder, workers) -> None:  # noqa: ANN001
        from storage.work_queue import claim

        free = workers - len(in_flight)
        if free < max(1, workers // 4):
            return  # claim in batches, not one account per round trip
        for account_id in claim(self.engine, self.run_id, self.host, free, self.lease_seconds):
            with recorder.held_lock:
                held.add(account_id)
            account = accounts[account_id]
            context = ScanContext(
                self.settings,
                self.sessions,
                self.profiles,
                self.organization,
                self.simulator,
                incremental=self.incremental,
            )
            future = pool.submit(scan_account, context, account)
            in_flight[future] = account

    def _finished(self) -> bool:
        from storage.work_queue import remaining

        return remaining(self.engine, self.run_id) == 0


class _Heartbeat:
    """Renews this replica's leases every third of a lease."""

    def __init__(self, worker: Worker, held: set[str], lock: threading.Lock) -> None:
        self.worker = worker
        self.held = held
        self.lock = lock
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from storage.work_queue import renew

        while not self.stopped.wait(self.worker.lease_seconds / 3):
            with self.lock:
                accounts = sorted(self.held)
            try:
                renew(
                    self.worker.engine,
                    self.worker.run_id,
                    self.worker.host,
                    accounts,
                    self.worker.lease_seconds,
                )
            except Exception:  # the next beat tries again; a lost lease only costs a rescan
                log.exception("lease renewal failed", extra={"run": self.worker.run_id})

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


def shared_incremental(
    settings: Settings,
    engine: Engine,
    run_id: int,
    scan: tuple[list[Profile], Simulator],
    since: datetime | None,
) -> IncrementalScan:
    """The shared run's incremental plan on this replica: the latest reads of the runs
    before it with verdicts decided at or after `since`, the starting replica's choice
    (None: a full scan that only records fingerprints)."""
    profiles, simulator = scan
    return plan_incremental(
        settings,
        engine,
        (profiles, simulator.name),
        since=since,
        keep_results=False,  # shared scans keep no verdicts in the report
        before_run=run_id,
    )


def join_shared_scans(
    settings: Settings,
    engine: Engine,
    *,
    host: str,
    sessions: AwsSessions | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Help every shared scan that has accounts nobody holds; returns accounts recorded."""
    from scanner.aws.session import AwsSessions
    from scanner.org_snapshot import from_json
    from scanner.profiles import load_profiles
    from storage.work_queue import open_shared_runs, shared_plan

    recorded = 0
    for run_id in open_shared_runs(engine):
        plan = shared_plan(engine, run_id)
        if plan is None:
            continue
        organization = from_json(plan.organization)
        sessions = sessions or AwsSessions(settings)
        profiles = load_profiles(settings)
        simulator = choose_simulator(settings, organization)
        worker = Worker(
            settings=settings,
            engine=engine,
            sessions=sessions,
            profiles=profiles,
            organization=organization,
            simulator=simulator,
            run_id=run_id,
            host=host,
            incremental=shared_incremental(
                settings, engine, run_id, (profiles, simulator), plan.incremental_since
            ),
        )
        log.info("joining shared scan", extra={"run": run_id})
        recorded += len(worker.run(stop_event))
    return recorded


def lead_shared_scan(
    report: ScanReport,
    accounts: list[Account],
    settings: Settings,
    engine: Engine,
    shared: tuple[AwsSessions, list[Profile], Organization, Simulator],
    stop_event: threading.Event | None,
    clock: float,
    *,
    since: datetime | None = None,
) -> ScanReport:
    """The starting replica's part of a shared scan: enqueue, scan with the others, wait
    for every account, close the run. `since`: scanner.incremental.carried_since (None: a
    full scan)."""
    from datetime import UTC

    from scanner.org_snapshot import to_json
    from storage.incremental_queries import carried_accounts
    from storage.repository import finish_run
    from storage.work_queue import SharedPlan, enqueue

    sessions, profiles, organization, simulator = shared
    run_id = report.run_id
    try:
        plan = SharedPlan(to_json(organization), since)
        enqueue(engine, run_id, [account.id for account in accounts], plan)
        incremental = shared_incremental(settings, engine, run_id, (profiles, simulator), since)
        worker = Worker(
            settings,
            engine,
            sessions,
            profiles,
            organization,
            simulator,
            run_id,
            scan_host(),
            incremental,
        )
        report.summary.outcomes.extend(worker.run(stop_event))
        report.summary.finished_at = datetime.now(UTC)
        # every replica's accounts, not only this one's
        carried = carried_accounts(engine, run_id)
        report.unchanged_accounts = log_unchanged(incremental, carried, len(accounts))
        if stop_event is not None and stop_event.is_set():
            report.interrupted = True
            reason = f"stopped after {len(report.summary.outcomes)} of {len(accounts)} accounts"
            report.totals = finish_run(engine, run_id, status="interrupted", error=reason)
        else:
            report.totals = finish_run(engine, run_id)
    except BaseException as exc:
        try:
            finish_run(engine, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        except Exception:
            log.exception("could not close the shared scan run", extra={"run": run_id})
        raise
    report.seconds = time.perf_counter() - clock
    return report
