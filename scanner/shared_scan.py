"""Scans shared by several replicas through PostgreSQL (storage/work_queue.py).

The replica that starts a scan discovers the organization, enqueues its accounts and
stores the organization; then it, and every replica that joins, claims accounts in small
batches, scans them, and records each account's verdicts in the transaction that marks it
done. Leases are renewed while an account is scanned; a replica that dies stops renewing,
its accounts' leases run out and another replica takes them over. The starting replica
waits until every account is done, then closes the run (totals, drift).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scanner.account_scan import (
    ScanContext,
    choose_simulator,
    scan_account,
    scan_host,
    without_results,
)
from scanner.aws.sizing import scan_concurrency
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
                self.settings, self.sessions, self.profiles, self.organization, self.simulator
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
    from storage.work_queue import open_shared_runs, shared_organization

    recorded = 0
    for run_id in open_shared_runs(engine):
        raw = shared_organization(engine, run_id)
        if raw is None:
            continue
        organization = from_json(raw)
        sessions = sessions or AwsSessions(settings)
        worker = Worker(
            settings=settings,
            engine=engine,
            sessions=sessions,
            profiles=load_profiles(settings),
            organization=organization,
            simulator=choose_simulator(settings, organization),
            run_id=run_id,
            host=host,
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
) -> ScanReport:
    """The starting replica's part of a shared scan: enqueue, scan with the others, wait
    for every account, close the run."""
    from datetime import UTC, datetime

    from scanner.org_snapshot import to_json
    from storage.repository import finish_run
    from storage.work_queue import enqueue

    sessions, profiles, organization, simulator = shared
    run_id = report.run_id
    try:
        enqueue(engine, run_id, [account.id for account in accounts], to_json(organization))
        worker = Worker(
            settings, engine, sessions, profiles, organization, simulator, run_id, scan_host()
        )
        report.summary.outcomes.extend(worker.run(stop_event))
        report.summary.finished_at = datetime.now(UTC)
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
