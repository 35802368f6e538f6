"""Accounts are read while the organization is still being walked: run_scan against the
sandbox (moto) into a real PostgreSQL database, with one OU's listing held back."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from scanner import runner
from scanner.runner import run_scan
from scanner.sandbox import sandbox_settings
from storage import repository

HOLD_SECONDS = 30.0


def test_an_account_is_read_before_a_later_ous_listing_returns(seeded, db_engine) -> None:
    sessions = seeded.sessions()
    legacy = seeded.sandbox.ou_ids["Legacy"]
    entered = threading.Event()  # some member account's role was assumed
    entered_before_legacy_listed: list[bool] = []

    def on_assume_role(params: dict[str, Any], **_: Any) -> None:
        entered.set()

    def hold_legacy(params: dict[str, Any], **_: Any) -> None:
        if legacy in json.dumps(params, default=str):
            # the walk cannot go past this OU until a member account is being read; a
            # scan that waited for the whole walk would never get there (HOLD_SECONDS)
            entered_before_legacy_listed.append(entered.wait(HOLD_SECONDS))

    sessions.client("sts", seeded.settings.organization.region).meta.events.register(
        "before-call.sts.AssumeRole", on_assume_role
    )
    sessions.org_client().meta.events.register(
        "before-call.organizations.ListAccountsForParent", hold_legacy
    )

    report = run_scan(seeded.settings, engine=db_engine, sessions=sessions)

    assert entered_before_legacy_listed == [True]
    totals = report.totals
    sandbox = seeded.sandbox
    assert (totals.status, totals.accounts_total, totals.accounts_scanned) == (
        "succeeded",
        len(sandbox.accounts),
        len(sandbox.accounts),
    )
    # the verdicts of the accounts read early were decided with the whole organization
    expected_failures = sum(len(a.failing(r)) for a in sandbox.accounts for r in sandbox.regions)
    assert totals.checks_total == sandbox.check_count()
    assert totals.checks_failed == expected_failures and totals.checks_errored == 0


def test_accounts_held_in_memory_are_bounded_when_the_database_is_slow(
    seeded, db_engine, monkeypatch
) -> None:
    """With a writer slower than AWS, accounts wait unstarted instead of piling up decided
    in memory: at most MAX_HELD accounts are started and not yet written."""
    held_limit = 3
    monkeypatch.setattr(runner, "MAX_HELD", held_limit)
    lock = threading.Lock()
    started, written, most_held = [0], [0], [0]
    real_scan, real_record = runner.exclusive_scan_account, repository.record_outcomes

    def counting_scan(*args: Any) -> Any:
        with lock:
            started[0] += 1
            most_held[0] = max(most_held[0], started[0] - written[0])
        return real_scan(*args)

    def slow_record(engine: Any, run_id: int, outcomes: list[Any]) -> Any:
        time.sleep(0.3)  # a database far behind the scan
        answer = real_record(engine, run_id, outcomes)
        with lock:
            written[0] += len(outcomes)
        return answer

    monkeypatch.setattr(runner, "exclusive_scan_account", counting_scan)
    monkeypatch.setattr(repository, "record_outcomes", slow_record)
    settings = sandbox_settings(seeded.sandbox, concurrency=8)

    report = runner.run_scan(settings, engine=db_engine, sessions=seeded.sessions(settings))

    assert report.totals.accounts_scanned == len(seeded.sandbox.accounts)
    assert written[0] == len(seeded.sandbox.accounts)
    assert 1 < most_held[0] <= held_limit
