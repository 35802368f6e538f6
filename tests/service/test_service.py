"""The scan service against a real PostgreSQL: the cross-replica lock, recovery of
abandoned runs and the stop sequence. The scan itself is a small function that records a
run through the real repository, so what is tested is the service around it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from exporters.metrics import SchedulerMetrics, build_registry
from scanner.config import ScheduleSettings
from scanner.model import ScanSummary
from scanner.runner import ScanReport
from scanner.service import (
    ScanService,
    build_scheduler,
    interval_seconds,
    recover_abandoned_runs,
)
from storage import repository
from storage.locks import scan_lock
from storage.migrate import upgrade
from storage.models import ScanRun

SETTINGS = SimpleNamespace()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def _start(engine: Engine, trigger: str) -> int:
    return repository.start_run(
        engine,
        trigger=trigger,
        host="test",
        config_fingerprint="",
        simulator_source="engine",
        accounts_total=0,
    )


def _report(run_id: int, totals: repository.RunTotals | None, *, interrupted: bool) -> ScanReport:
    summary = ScanSummary(started_at=datetime.now(UTC), finished_at=None, outcomes=[])
    return ScanReport(run_id=run_id, summary=summary, totals=totals, interrupted=interrupted)


def scan_that_waits(release: threading.Event, started: threading.Event | None = None) -> Any:
    """Records a run that lasts until `release` (or its stop event) is set."""

    def scan(
        settings: Any, *, engine: Engine, trigger: str, stop_event: threading.Event
    ) -> ScanReport:
        run_id = _start(engine, trigger)
        if started is not None:
            started.set()
        while not (release.is_set() or stop_event.is_set()):
            time.sleep(0.02)
        if stop_event.is_set():
            repository.mark_interrupted(engine, run_id, "stopped")
            return _report(run_id, None, interrupted=True)
        return _report(run_id, repository.finish_run(engine, run_id), interrupted=False)

    return scan


def _runs(engine: Engine) -> list[ScanRun]:
    with Session(engine) as session:
        return list(session.scalars(select(ScanRun).order_by(ScanRun.id)))


def test_second_replica_skips_while_first_scans(database_url: str, engine: Engine) -> None:
    # a second engine is a second replica: its own connections, same database
    other_engine = create_engine(database_url)
    release, started = threading.Event(), threading.Event()
    registry = build_registry(None)
    first = ScanService(SETTINGS, engine, scan=scan_that_waits(release, started))
    second = ScanService(
        SETTINGS,
        other_engine,
        metrics=SchedulerMetrics(registry),
        scan=scan_that_waits(threading.Event()),
    )
    thread = first.scan_in_background()
    assert started.wait(10)
    attempt = second.scan_once()
    release.set()
    thread.join(10)
    other_engine.dispose()
    assert attempt.outcome == "skipped_lock_held"
    assert first.last_attempt is not None and first.last_attempt.outcome == "scanned"
    assert (
        registry.get_sample_value(
            "vaultscan_scheduler_scans_total", {"outcome": "skipped_lock_held"}
        )
        == 1
    )
    assert [run.status for run in _runs(engine)] == ["succeeded"]


def test_abandoned_run_is_interrupted_only_when_nobody_scans(engine: Engine) -> None:
    run_id = _start(engine, "schedule")
    with scan_lock(engine) as acquired:  # a live replica holds the lock: hands off
        assert acquired
        assert recover_abandoned_runs(engine) == []
    assert [run.status for run in _runs(engine)] == ["running"]
    assert recover_abandoned_runs(engine) == [run_id]
    (run,) = _runs(engine)
    assert run.status == "interrupted" and run.finished_at is not None
    assert "abandoned" in (run.error or "")


def test_scan_start_closes_a_dead_replicas_run(engine: Engine) -> None:
    dead = _start(engine, "schedule")  # its process died: no lock held
    release = threading.Event()
    release.set()
    attempt = ScanService(SETTINGS, engine, scan=scan_that_waits(release)).scan_once()
    assert attempt.outcome == "scanned"
    statuses = {run.id: run.status for run in _runs(engine)}
    assert statuses[dead] == "interrupted"
    assert statuses[attempt.run_id] == "succeeded"


def test_stop_lets_a_short_scan_finish(engine: Engine) -> None:
    release, started = threading.Event(), threading.Event()
    service = ScanService(SETTINGS, engine, scan=scan_that_waits(release, started))
    service.scan_in_background()
    assert started.wait(10)
    threading.Timer(0.3, release.set).start()
    assert service.stop(grace_seconds=10) is True
    assert [run.status for run in _runs(engine)] == ["succeeded"]


def test_stop_interrupts_a_scan_past_its_grace(engine: Engine) -> None:
    started = threading.Event()
    service = ScanService(SETTINGS, engine, scan=scan_that_waits(threading.Event(), started))
    service.scan_in_background()
    assert started.wait(10)
    t0 = time.monotonic()
    assert service.stop(grace_seconds=0.3) is True
    assert time.monotonic() - t0 < 5
    (run,) = _runs(engine)
    assert run.status == "interrupted"
    # nothing new starts once stopping
    assert service.scan_once().outcome == "stopped"


def test_scan_ignoring_its_stop_event_is_abandoned_and_closed(engine: Engine) -> None:
    started, never = threading.Event(), threading.Event()

    def stubborn(settings: Any, *, engine: Engine, trigger: str, stop_event: Any) -> Any:
        _start(engine, trigger)
        started.set()
        never.wait(30)

    service = ScanService(SETTINGS, engine, scan=stubborn, interrupt_wait_seconds=0.3)
    service.scan_in_background()
    assert started.wait(10)
    assert service.stop(grace_seconds=0.2) is False
    (run,) = _runs(engine)
    assert run.status == "interrupted"  # never left "running"
    never.set()


def test_failing_scan_is_counted_and_leaves_no_running_run(engine: Engine) -> None:
    def broken(settings: Any, *, engine: Engine, trigger: str, stop_event: Any) -> Any:
        _start(engine, trigger)
        raise RuntimeError("collector exploded")

    registry = build_registry(None)
    service = ScanService(SETTINGS, engine, metrics=SchedulerMetrics(registry), scan=broken)
    assert service.scan_once().outcome == "failed"
    assert registry.get_sample_value("vaultscan_scheduler_scans_total", {"outcome": "failed"}) == 1
    assert [run.status for run in _runs(engine)] == ["interrupted"]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (ScheduleSettings(), 6 * 3600),
        (ScheduleSettings(interval_minutes=15), 900),
        (ScheduleSettings(cron="*/5 * * * *"), 300),
        # weekdays at 09:00: the weekend gap is the longest
        (ScheduleSettings(cron="0 9 * * 1-5"), 3 * 24 * 3600),
    ],
)
def test_interval_seconds(schedule: ScheduleSettings, expected: int) -> None:
    assert interval_seconds(schedule, now=datetime(2026, 1, 7, tzinfo=UTC)) == expected


def test_scheduler_job_never_overlaps_and_runs_at_startup(engine: Engine) -> None:
    service = ScanService(SETTINGS, engine, scan=scan_that_waits(threading.Event()))
    scheduler = build_scheduler(service, ScheduleSettings(misfire_grace_seconds=120))
    later = build_scheduler(service, ScheduleSettings(run_at_startup=False, interval_minutes=60))
    for each in (scheduler, later):
        each.start(paused=True)  # job defaults apply when the scheduler starts
    try:
        job = scheduler.get_job("scan")
        assert job.max_instances == 1 and job.coalesce is True
        assert job.misfire_grace_time == 120
        assert abs((job.next_run_time - datetime.now(UTC)).total_seconds()) < 5
        delay = (later.get_job("scan").next_run_time - datetime.now(UTC)).total_seconds()
        assert 3500 < delay <= 3600
    finally:
        for each in (scheduler, later):
            each.shutdown(wait=False)


def test_retention_job_prunes_under_its_own_lock(engine: Engine) -> None:
    from scanner.config import RetentionSettings
    from scanner.service import prune_old_evidence
    from storage.locks import PRUNE_LOCK_KEY, try_lock

    keep = RetentionSettings(keep_days=30)
    stop = threading.Event()
    result = prune_old_evidence(engine, keep, stop)
    assert result is not None and result.runs == 0
    assert prune_old_evidence(engine, RetentionSettings(keep_days=0), stop) is None  # off
    with try_lock(engine, PRUNE_LOCK_KEY) as held:  # another replica is pruning
        assert held
        assert prune_old_evidence(engine, keep, stop) is None
    # a scan in progress does not stop the prune: they use different locks
    with scan_lock(engine) as scanning:
        assert scanning
        assert prune_old_evidence(engine, keep, stop) is not None


def test_scheduler_prunes_only_when_retention_is_on(engine: Engine) -> None:
    from scanner.config import RetentionSettings

    service = ScanService(SETTINGS, engine, scan=scan_that_waits(threading.Event()))
    on = build_scheduler(service, ScheduleSettings(), RetentionSettings(interval_minutes=720))
    off = build_scheduler(service, ScheduleSettings(), RetentionSettings(keep_days=0))
    try:
        job = on.get_job("prune")
        assert job is not None and job.trigger.interval.total_seconds() == 720 * 60
        assert off.get_job("prune") is None and off.get_job("scan") is not None
    finally:
        for each in (on, off):
            if each.running:
                each.shutdown(wait=False)


def test_replicas_poll_for_shared_scans_only_when_sharing(engine: Engine) -> None:
    from scanner.config import load_settings

    sharing = ScanService(load_settings(overrides={"share_scans": True}), engine)
    alone = ScanService(load_settings(overrides={}), engine)
    on = build_scheduler(sharing, ScheduleSettings())
    off = build_scheduler(alone, ScheduleSettings())
    job = on.get_job("join")
    assert job is not None and job.trigger.interval.total_seconds() == 5
    assert off.get_job("join") is None and off.get_job("scan") is not None
    # nothing to join: returns at once, recording nothing
    assert sharing.join_shared_once() == 0
