"""`vaultscan serve`: scans on a schedule, one at a time across every replica.

Each scheduled scan first tries the PostgreSQL scan lock (storage.locks.scan_lock). The
replica that gets it scans; the others skip and count the skip. Holding the lock also
proves that nobody else is scanning, so any run still marked "running" at that moment was
abandoned by a dead process and is closed as interrupted before the new scan starts.

Stopping (SIGTERM/SIGINT): no new scan starts; a scan in progress gets
`schedule.stop_grace_seconds` to finish, then its stop event is set and the runner records
the run as interrupted. A scan that ignores even that is abandoned and its run closed here.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, Literal, Protocol

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from exporters.metrics import SchedulerMetrics
from scanner.config import ReportSettings, RetentionSettings, ScheduleSettings, Settings
from scanner.logs import ProgressLog
from scanner.outlets import report_s3_client
from scanner.runner import ScanReport, run_scan
from scanner.vocabulary import COMPLETE_RUN_STATUSES, RunStatus, Trigger
from storage.locks import PRUNE_LOCK_KEY, REPORT_LOCK_KEY, scan_lock, try_lock
from storage.migrate import head_revision, schema_revision
from storage.repository import RunTotals, find_running_runs, mark_interrupted
from storage.retention import PruneResult, prune

log = logging.getLogger(__name__)

# After the grace period the runner is told to stop; it gets this long to record that.
INTERRUPT_WAIT_SECONDS = 15.0
# How many upcoming cron runs are looked at to find the longest gap between two scans.
CRON_GAPS_EXAMINED = 50
SCHEDULED_TRIGGER = Trigger.SCHEDULE
# The first prune waits a little, so start-up (migrations, the first scan) goes first.
PRUNE_STARTUP_DELAY_SECONDS = 60
JOIN_POLL_SECONDS = 5  # how often a replica looks for a shared scan to help
# Runs whose findings go to the outlets: they saw the organization (some accounts may
# have errored); failed and interrupted runs prove nothing about what was fixed.
PUBLISHED_STATUSES = COMPLETE_RUN_STATUSES

Outcome = Literal["scanned", "skipped_lock_held", "failed", "stopped"]


class ScanFunction(Protocol):
    """What the service calls to scan: scanner.runner.run_scan, or a stand-in in tests."""

    def __call__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        trigger: str,
        stop_event: threading.Event,
    ) -> ScanReport: ...


@dataclass(frozen=True)
class ScanAttempt:
    outcome: Outcome
    run_id: int | None = None
    status: str | None = None  # the run's final status when it was scanned


def host_id() -> str:
    """Who is scanning, as written to scan_runs.host and the logs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def build_trigger(schedule: ScheduleSettings) -> BaseTrigger:
    """APScheduler trigger for `schedule.cron` (UTC) or every `schedule.interval_minutes`."""
    if schedule.cron:
        return CronTrigger.from_crontab(schedule.cron, timezone=UTC)
    return IntervalTrigger(minutes=schedule.interval_minutes, timezone=UTC)


def interval_seconds(schedule: ScheduleSettings, *, now: datetime | None = None) -> float:
    """The longest time between two scheduled scans: the interval, or for a cron the
    largest gap among its next runs (so "stale" alerts never fire over a weekend gap)."""
    if not schedule.cron:
        return float(schedule.interval_minutes * 60)
    trigger = build_trigger(schedule)
    previous = trigger.get_next_fire_time(None, now or datetime.now(UTC))
    longest = 0.0
    for _ in range(CRON_GAPS_EXAMINED):
        following = trigger.get_next_fire_time(previous, previous + timedelta(microseconds=1))
        if following is None:
            break
        longest = max(longest, (following - previous).total_seconds())
        previous = following
    return longest


def recover_abandoned_runs(engine: Engine, *, lock_held: bool = False) -> list[int]:
    """Mark runs left "running" by a dead process as interrupted; return their ids.

    Safe only while nobody scans: with `lock_held` the caller holds the scan lock; without
    it the lock is taken here, and if another replica holds it nothing is touched."""
    if not lock_held:
        with scan_lock(engine) as acquired:
            if not acquired:
                log.info("startup recovery skipped: another replica is scanning")
                return []
            return recover_abandoned_runs(engine, lock_held=True)
    recovered = []
    for run in find_running_runs(engine):
        mark_interrupted(
            engine, run.id, f"abandoned: its process ({run.host or 'unknown'}) stopped mid-scan"
        )
        log.warning("marked abandoned run interrupted run_id=%s host=%s", run.id, run.host)
        recovered.append(run.id)
    return recovered


class ScanService:
    """Runs scans under the cross-replica lock and stops them cleanly."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        metrics: SchedulerMetrics | None = None,
        scan: ScanFunction | None = None,
        interrupt_wait_seconds: float = INTERRUPT_WAIT_SECONDS,
        after_scan: Callable[[int], None] | None = None,
    ) -> None:
        self._settings = settings
        self.settings = settings
        self._engine = engine
        self._metrics = metrics
        self._scan = scan
        self._interrupt_wait = interrupt_wait_seconds
        # publishes a finished run to the outlets (scanner.outlets.after_scan_step)
        self._after_scan = after_scan
        self.stopping = threading.Event()  # shutdown requested: start nothing new
        self._scan_stop = threading.Event()  # handed to the runner: stop now
        self._idle = threading.Event()  # no scan in progress in this process
        self._idle.set()
        self._abandoned = threading.Event()  # stop() gave up waiting for the scan
        self._holds_lock = False
        self._attempt_lock = threading.Lock()  # one attempt per process at a time
        self.last_attempt: ScanAttempt | None = None

    # --- one scan ------------------------------------------------------------------

    @property
    def shares_scans(self) -> bool:
        return bool(getattr(self._settings, "share_scans", False))

    def scan_once(self, trigger: str = SCHEDULED_TRIGGER) -> ScanAttempt:
        """Scan now if no replica is scanning; otherwise skip. Never raises for a scan
        failure: it is logged, counted and left in scan_runs by the runner."""
        if not self._attempt_lock.acquire(blocking=False):
            return ScanAttempt("stopped")  # this process is already scanning
        self._idle.clear()
        try:
            if self.stopping.is_set():
                return ScanAttempt("stopped")
            with scan_lock(self._engine) as acquired:
                if not acquired:
                    log.info("scan skipped: another replica holds the scan lock host=%s", host_id())
                    return self._count(ScanAttempt("skipped_lock_held"))
                self._holds_lock = True
                try:
                    return self._count(self._scan_holding_lock(trigger))
                finally:
                    # whatever happened, leave no run "running" behind us
                    recover_abandoned_runs(self._engine, lock_held=True)
                    self._holds_lock = False
        except Exception as exc:  # the database itself failed (lock, recovery)
            log.error("scan attempt failed error=%s: %s", type(exc).__name__, exc)
            return self._count(ScanAttempt("failed"))
        finally:
            self._idle.set()
            self._attempt_lock.release()

    def _scan_holding_lock(self, trigger: str) -> ScanAttempt:
        recover_abandoned_runs(self._engine, lock_held=True)
        if self.stopping.is_set():
            return ScanAttempt("stopped")
        log.info("scan starting trigger=%s host=%s", trigger, host_id())
        try:
            with _progress_log(self._settings) as progress:
                scan = self._scan or _default_scan(progress)
                report = scan(
                    self._settings,
                    engine=self._engine,
                    trigger=trigger,
                    stop_event=self._scan_stop,
                )
        except Exception as exc:
            # the runner has recorded the run as failed with this message
            log.error("scan failed error=%s: %s", type(exc).__name__, exc)
            log.debug("scan failure traceback", exc_info=True)
            return ScanAttempt("failed")
        # totals is None only when the run could not be closed (the runner then raised)
        status = RunStatus.INTERRUPTED if report.interrupted else _status(report.totals)
        log.info(
            "scan finished run_id=%s status=%s accounts=%s errored=%s checks_failed=%s "
            "seconds=%.1f",
            report.run_id,
            status,
            *_counts(report.totals),
            report.seconds,
        )
        outcome: Outcome = "failed" if status == RunStatus.FAILED else "scanned"
        if self._after_scan is not None and status in PUBLISHED_STATUSES:
            try:
                # still under the scan lock: one replica publishes at a time
                self._after_scan(report.run_id)
            except Exception as exc:  # an outlet never fails the scan
                log.error("post-scan step failed error=%s: %s", type(exc).__name__, exc)
        return ScanAttempt(outcome, report.run_id, status)

    def _count(self, attempt: ScanAttempt) -> ScanAttempt:
        self.last_attempt = attempt
        if self._metrics is not None and attempt.outcome != "stopped":
            self._metrics.record(attempt.outcome)
        return attempt

    def join_shared_once(self) -> int:
        """With `share_scans`: help the scan another replica leads (claim its accounts
        until none is left). Returns the accounts this replica recorded."""
        from scanner.shared_scan import join_shared_scans

        if self.stopping.is_set() or not self._attempt_lock.acquire(blocking=False):
            return 0  # stopping, or this process is scanning (leading) right now
        self._idle.clear()
        try:
            return join_shared_scans(
                self._settings, self._engine, host=host_id(), stop_event=self._scan_stop
            )
        except Exception as exc:  # the next poll tries again
            log.error("joining a shared scan failed error=%s: %s", type(exc).__name__, exc)
            return 0
        finally:
            self._idle.set()
            self._attempt_lock.release()

    def scan_in_background(self, trigger: str = SCHEDULED_TRIGGER) -> threading.Thread:
        """scan_once on a daemon thread: a scan that ignores its stop request cannot keep
        the process alive after `stop` gave up on it."""
        thread = threading.Thread(
            target=self.scan_once, args=(trigger,), name="vaultscan-scan", daemon=True
        )
        self._idle.clear()  # before start: stop() must not see a gap and think we are idle
        thread.start()
        return thread

    def scheduled_job(self) -> None:
        """The APScheduler job: wait for the scan thread, but give up when stop does."""
        thread = self.scan_in_background()
        while thread.is_alive() and not self._abandoned.is_set():
            thread.join(0.5)

    def prune_once(self) -> PruneResult | None:
        """The retention job (see prune_old_evidence)."""
        return prune_old_evidence(self._engine, self._settings.retention, self.stopping)

    def report_once(self) -> list[str] | None:
        """The report job (see deliver_scheduled_report)."""
        s3 = report_s3_client(self._settings)
        return deliver_scheduled_report(self._engine, self._settings.report, s3_client=s3)

    # --- stopping ------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stopping.set()

    def stop(self, grace_seconds: float) -> bool:
        """Let a scan in progress finish within `grace_seconds`, then interrupt it.
        Returns True when no scan is left running in this process."""
        self.stopping.set()
        if self._idle.wait(grace_seconds):
            return True
        log.warning("scan still running after %.0fs grace: interrupting it", grace_seconds)
        self._scan_stop.set()
        if self._idle.wait(self._interrupt_wait):
            return True
        log.error("scan did not stop within %.0fs; abandoning it", self._interrupt_wait)
        if self._holds_lock:
            # we hold the scan lock, so every running run is ours
            try:
                recover_abandoned_runs(self._engine, lock_held=True)
            except Exception as exc:  # the next start-up or scan closes it instead
                log.error("could not close the abandoned run error=%s", type(exc).__name__)
        self._abandoned.set()
        return False


def _status(totals: RunTotals | None) -> str | None:
    return totals.status if totals is not None else None


def _counts(totals: RunTotals | None) -> tuple[int | None, int | None, int | None]:
    """Accounts scanned and errored, checks failed: what the log line reports."""
    if totals is None:
        return None, None, None
    return totals.accounts_scanned, totals.accounts_errored, totals.checks_failed


def _default_scan(progress: ProgressLog | None = None) -> ScanFunction:
    # the service reads verdicts back from the database; it need not keep them in memory
    return functools.partial(run_scan, keep_results=False, progress=progress)


def _progress_log(settings: Settings) -> contextlib.AbstractContextManager[ProgressLog | None]:
    """Progress lines every logging.progress_seconds while the scan runs (0: none)."""
    seconds = getattr(getattr(settings, "logging", None), "progress_seconds", 0)
    return ProgressLog(seconds) if seconds else contextlib.nullcontext()


def prune_old_evidence(
    engine: Engine, retention: RetentionSettings, stop: threading.Event
) -> PruneResult | None:
    """Remove evidence older than `retention.keep_days` (storage.retention), one replica at
    a time (the prune lock); None when retention is off, another replica is pruning, or
    pruning failed (logged; the next run tries again). Scans go on meanwhile."""
    if not retention.keep_days:
        return None
    with try_lock(engine, PRUNE_LOCK_KEY) as acquired:
        if not acquired:
            log.info("prune skipped: another replica is pruning host=%s", host_id())
            return None
        try:
            return prune(
                engine, keep_days=retention.keep_days, batch_size=retention.batch_size, stop=stop
            )
        except Exception as exc:
            log.error("prune failed error=%s: %s", type(exc).__name__, exc)
            return None


def deliver_scheduled_report(
    engine: Engine, report: ReportSettings, *, s3_client: Any = None
) -> list[str] | None:
    """Build the report and deliver it (exporters.report.delivery), one replica at a time;
    where it went, or None when another replica holds the report lock, there is nothing
    to report yet, or delivery failed (logged)."""
    from exporters.report import NoFinishedScan, build_report
    from exporters.report.delivery import deliver_or_raise

    with try_lock(engine, REPORT_LOCK_KEY) as acquired:
        if not acquired:
            log.info("report skipped: another replica is delivering it host=%s", host_id())
            return None
        try:
            built = build_report(engine, days=report.days, owner_tag=report.owner_tag)
            delivered = deliver_or_raise(built, report, s3_client=s3_client)
        except NoFinishedScan:
            log.warning("report skipped: no finished scan in the database yet")
            return None
        except Exception as exc:
            log.error("report failed error=%s: %s", type(exc).__name__, exc)
            return None
    log.info("report delivered to=%s", ", ".join(delivered))
    return delivered


# --- the long-running process ----------------------------------------------------------


def build_scheduler(
    service: ScanService,
    schedule: ScheduleSettings,
    retention: RetentionSettings | None = None,
) -> BackgroundScheduler:
    """A BackgroundScheduler with the scan job (no overlap, missed runs coalesced) and,
    when `retention` keeps a finite number of days, the prune job."""
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={
            "coalesce": True,  # after a pause, one scan, not a burst of missed ones
            "max_instances": 1,
            # 0 in the settings means "run however late" (APScheduler's None)
            "misfire_grace_time": schedule.misfire_grace_seconds or None,
        },
    )
    options: dict[str, datetime] = {}
    if schedule.run_at_startup:
        options["next_run_time"] = datetime.now(UTC)
    scheduler.add_job(
        service.scheduled_job,
        build_trigger(schedule),
        id="scan",
        name="vaultscan scan",
        **options,
    )
    if service.shares_scans:
        # replicas that did not start the scan take their share of its accounts
        scheduler.add_job(
            service.join_shared_once,
            IntervalTrigger(seconds=JOIN_POLL_SECONDS, timezone=UTC),
            id="join",
            name="vaultscan shared scans",
            next_run_time=datetime.now(UTC) + timedelta(seconds=JOIN_POLL_SECONDS),
        )
    if retention is not None and retention.keep_days:
        # its own job: a long prune never delays a scan, nor a scan a prune
        scheduler.add_job(
            service.prune_once,
            IntervalTrigger(minutes=retention.interval_minutes, timezone=UTC),
            id="prune",
            name="vaultscan retention",
            next_run_time=datetime.now(UTC) + timedelta(seconds=PRUNE_STARTUP_DELAY_SECONDS),
        )
    report = getattr(service.settings, "report", None)
    if report is not None and report.schedule:
        scheduler.add_job(
            service.report_once,
            CronTrigger.from_crontab(report.schedule, timezone=UTC),
            id="report",
            name="vaultscan report",
        )
    return scheduler


def install_signal_handlers(stop: Callable[[], None]) -> None:
    """SIGTERM (Kubernetes) and SIGINT (Ctrl-C) both request a clean stop."""

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def wait_for(event: threading.Event, *, poll_seconds: float = 1.0) -> None:
    """Block until `event` is set, still letting signal handlers run."""
    while not event.wait(poll_seconds):
        pass


def database_readiness(engine: Engine) -> Callable[[], tuple[bool, str]]:
    """The /readyz check: the database answers and its schema is at the newest migration."""
    head = head_revision()

    def check() -> tuple[bool, str]:
        try:
            current = schema_revision(engine)
        except Exception as exc:
            return False, f"database unreachable ({type(exc).__name__})"
        if current != head:
            return False, (
                f"database schema at revision {current or 'none'}, expected {head}: "
                "run `vaultscan db upgrade`"
            )
        return True, "ready"

    return check
