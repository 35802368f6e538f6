"""The per-account time limit: one slow account is recorded as an error naming the limit,
and every other account is scanned and stored."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

import scanner.aws.collect as collect_module
from scanner import account_scan, deadline, runner
from scanner.sandbox import sandbox_settings
from storage.models import AccountScan


def test_a_slow_account_is_cut_at_its_limit_and_the_scan_goes_on(
    seeded, db_engine, monkeypatch
) -> None:
    settings = sandbox_settings(seeded.sandbox, concurrency=2, account_time_limit_seconds=10)
    victim = seeded.sandbox.accounts[0].account_id
    real_collect = collect_module.collect_account
    calls_after_limit: list[float] = []
    worker_stopped = threading.Event()

    def slow_for_victim(sessions, settings, profiles, account, organization, simulator, **kw):
        if account.id != victim:
            return real_collect(
                sessions, settings, profiles, account, organization, simulator, **kw
            )
        started = time.monotonic()
        while True:  # an account whose API calls never end (each call checks the limit)
            try:
                deadline.check()
            except deadline.TimeLimitExceeded:
                calls_after_limit.append(time.monotonic() - started)
                worker_stopped.set()
                raise
            time.sleep(0.05)

    # patched where scanning an account looks it up (scanner.account_scan imports it by name)
    monkeypatch.setattr(account_scan, "collect_account", slow_for_victim)
    started = time.monotonic()
    report = runner.run_scan(settings, engine=db_engine, sessions=seeded.sessions(settings))
    elapsed = time.monotonic() - started

    outcome = next(o for o in report.summary.outcomes if o.account.id == victim)
    assert outcome.status == "error"
    assert "account time limit exceeded" in outcome.error
    assert "10 s (account_time_limit_seconds)" in outcome.error
    assert report.totals.status == "partial"
    assert report.totals.accounts_errored == 1
    assert report.totals.accounts_scanned == len(seeded.sandbox.accounts) - 1
    with db_engine.connect() as conn:
        stored = conn.execute(
            select(AccountScan.account_id, AccountScan.status, AccountScan.error).where(
                AccountScan.scan_run_id == report.run_id
            )
        ).all()
    assert len(stored) == len(seeded.sandbox.accounts)  # nothing lost, nothing doubled
    [victim_row] = [row for row in stored if row.account_id == victim]
    assert "account time limit exceeded" in victim_row.error
    assert elapsed < 90
    # the abandoned worker stops on its own at its next call after its limit; the scan
    # does not wait for it (its own clock starts once it runs, a little after the scan's
    # clock for it), so it may notice just after the scan returned
    assert worker_stopped.wait(timeout=15)
    assert calls_after_limit[0] < 11.0


def test_the_limit_is_a_documented_setting_with_a_default() -> None:
    from scanner.config import Settings

    assert Settings().account_time_limit_seconds == 900
