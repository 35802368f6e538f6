"""What an incremental scan reads and writes: each account's latest read (only one that
succeeded, has a fingerprint, is recent and not pruned counts), and verdicts carried
from an earlier run row for row, evidence and failing streak included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from storage_factories import error_outcome, make_outcome, run

from storage import repository as repo
from storage.incremental_queries import LatestRead, latest_reads, stored_verdicts
from storage.models import CheckResult, ScanRun

A, B, C, D = "111111111111", "222222222222", "333333333333", "444444444444"
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def test_latest_reads_count_only_successful_fingerprinted_reads(engine):
    first, first_started = run(
        engine,
        [
            make_outcome(A, {"backup:CreateBackupVault": "pass"}, evidence_fingerprint="a1"),
            make_outcome(B, {"backup:CreateBackupVault": "pass"}, evidence_fingerprint="b1"),
            make_outcome(C, {"backup:CreateBackupVault": "pass"}, evidence_fingerprint="c1"),
            make_outcome(D, {"backup:CreateBackupVault": "pass"}, evidence_fingerprint="d1"),
        ],
    )
    # a later run: A read again, B not readable, C rescanned without a fingerprint (as an
    # event-driven rescan records it); D not in it
    second, second_started = run(
        engine,
        [
            make_outcome(A, {"backup:CreateBackupVault": "pass"}, evidence_fingerprint="a2"),
            error_outcome(B),
            make_outcome(C, {"backup:CreateBackupVault": "pass"}),
        ],
    )

    assert latest_reads(engine, not_before=LONG_AGO) == {
        A: LatestRead(second, "a2", second_started),
        D: LatestRead(first, "d1", first_started),
    }
    with engine.begin() as conn:
        conn.execute(update(ScanRun).where(ScanRun.id == first).values(pruned_at=datetime.now(UTC)))
    assert latest_reads(engine, not_before=LONG_AGO) == {
        A: LatestRead(second, "a2", second_started)
    }
    future = datetime.now(UTC) + timedelta(hours=1)
    assert latest_reads(engine, not_before=future) == {}


def test_carried_verdicts_are_as_old_as_the_run_that_decided_them(engine):
    decided, decided_started = run(
        engine, [make_outcome(A, {"kms:CreateGrant": "pass"}, evidence_fingerprint="a1")]
    )
    carry = make_outcome(
        A, {}, evidence_fingerprint="a1", carried_from_run=decided, decided_at=decided_started
    )
    carrying, carrying_started = run(engine, [carry])
    assert carrying_started > decided_started

    assert latest_reads(engine, not_before=decided_started) == {
        A: LatestRead(carrying, "a1", decided_started)
    }
    assert latest_reads(engine, not_before=carrying_started) == {}


def test_carried_verdicts_are_copied_with_their_evidence_and_failing_streak(engine):
    checks = {"backup:CreateBackupVault": "fail", "kms:CreateGrant": "pass"}
    first, started = run(engine, [make_outcome(A, checks, evidence_fingerprint="a1")])
    carry = make_outcome(A, {}, evidence_fingerprint="a1", carried_from_run=first)
    second, _ = run(engine, [carry])

    def rows(run_id):
        query = select(
            CheckResult.check_key,
            CheckResult.status,
            CheckResult.message,
            CheckResult.evidence,
            CheckResult.failing_since,
        ).where(CheckResult.scan_run_id == run_id)
        with engine.connect() as conn:
            return sorted(tuple(row) for row in conn.execute(query))

    assert rows(second) == rows(first) and len(rows(first)) == 2
    failing = [row for row in rows(second) if row[1] == "fail"]
    assert [row[4] for row in failing] == [started]  # the streak began in the first run
    with engine.connect() as conn:
        carried = conn.execute(
            text("SELECT carried_from_run_id FROM account_scans WHERE scan_run_id = :r"),
            {"r": second},
        ).scalar_one()
    assert carried == first
    assert repo.latest_run(engine).checks_failed == 1
    verdicts = stored_verdicts(engine, second, A)
    assert sorted((v.check, v.status, v.message) for v in verdicts) == [
        ("backup:CreateBackupVault", "fail", "backup:CreateBackupVault is fail"),
        ("kms:CreateGrant", "pass", "kms:CreateGrant is pass"),
    ]
    assert {v.account_id for v in verdicts} == {A}
