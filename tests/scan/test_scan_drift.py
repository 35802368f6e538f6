"""Drift end to end: an account broken in the sandbox regresses, repaired it is fixed.
Breaking an account changes the sandbox, so this module seeds its own (`fresh_sandbox`)
and never uses the shared, read-only `seeded` of the other scan modules."""

from __future__ import annotations

from scanner.runner import run_scan
from scanner.sandbox import break_account, repair_account, sandbox_settings
from storage.repository import drift_events, latest_results


def _only(seeded, *names: str):
    """Settings that scan only these sandbox accounts (keeps the test fast)."""
    ids = [seeded.sandbox.by_name(name).account_id for name in names]
    return sandbox_settings(seeded.sandbox, accounts={"include": ids})


def test_drift_a_broken_then_repaired_account_regresses_then_is_fixed(fresh_sandbox, db_engine):
    # breaks and repairs an account: a sandbox of its own, never the module's `seeded`
    sandbox = fresh_sandbox.sandbox
    victim = sandbox.by_name("workloads-shared")
    settings = _only(fresh_sandbox, "workloads-shared")

    def scan():
        return run_scan(settings, engine=db_engine, sessions=fresh_sandbox.sessions(settings))

    first = scan()
    assert first.totals.drift.get("regressed", 0) == 0 and first.totals.checks_failed == 0
    expectation = break_account(fresh_sandbox.session, sandbox, victim.account_id)
    try:
        second = scan()
        assert second.totals.drift.get("regressed") == len(sandbox.regions)
        rows = latest_results(db_engine, account_id=victim.account_id, status="fail")
        assert {(row["region"], row["check"]) for row in rows} == {
            (region, check) for region in sandbox.regions for check in victim.failing(region)
        }
        for row in rows:
            assert row["deciding_layer"] == expectation.layer == "identity"
            assert row["policy"] == "inline:BackupOperator/EmergencyFreeze"
            assert row["statement"] == expectation.statement == "FreezeVaultCreation"
            assert row["remediation"]["kind"] == expectation.fix_kind
            assert row["failing_since"] is not None
        events = drift_events(db_engine, run_id=second.run_id)
        assert {(e["account_id"], e["kind"]) for e in events} == {(victim.account_id, "regressed")}
    finally:
        repair_account(fresh_sandbox.session, sandbox, victim.account_id)
    third = scan()
    assert third.totals.drift.get("fixed") == len(sandbox.regions)
    assert latest_results(db_engine, account_id=victim.account_id, status="fail") == []
