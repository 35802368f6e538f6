"""Accounts are read while the organization is still being walked: run_scan against the
sandbox (moto) into a real PostgreSQL database, with one OU's listing held back."""

from __future__ import annotations

import json
import threading
from typing import Any

from scanner.runner import run_scan

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
