"""Incremental scans end to end: an unchanged account keeps its verdicts without the
simulator, a changed one (a key policy edit) is decided again, a policy that reads the
time of the scan is never skipped, and a full scan decides everything. The tests change
the sandbox, so each seeds its own (`fresh_sandbox`)."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select, text

from scanner.engine_simulator import EngineSimulator
from scanner.runner import run_scan
from scanner.sandbox import ADMIN_ROLE_NAME, BACKUP_ROLE_NAME, sandbox_settings
from storage.models import AccountScan, CheckResult

# two healthy accounts: one is changed, the other must be carried over
CHANGED, UNTOUCHED = "workloads-shared", "prod-payments"


@pytest.fixture
def simulated(monkeypatch):
    """Counts the accounts the simulator is asked about."""
    asked: list[str] = []
    simulate = EngineSimulator.simulate

    def counting(self, iam, role, account, region, requests):
        asked.append(account.id)
        return simulate(self, iam, role, account, region, requests)

    monkeypatch.setattr(EngineSimulator, "simulate", counting)
    return asked


def _scanner(seeded, engine, **incremental):
    ids = [seeded.sandbox.by_name(name).account_id for name in (CHANGED, UNTOUCHED)]
    settings = sandbox_settings(
        seeded.sandbox,
        accounts={"include": ids},
        incremental={"enabled": True, **incremental},
    )

    def scan(full: bool = False):
        return run_scan(settings, engine=engine, sessions=seeded.sessions(settings), full=full)

    return scan


def _reads(engine, run_id: int) -> dict[str, int | None]:
    """Account id -> the run its verdicts were carried from (None: decided in this run)."""
    query = select(AccountScan.account_id, AccountScan.carried_from_run_id).where(
        AccountScan.scan_run_id == run_id
    )
    with engine.connect() as conn:
        return dict(conn.execute(query).all())


def _verdicts(engine, run_id: int, account_id: str) -> dict[str, tuple]:
    query = select(
        CheckResult.check_key, CheckResult.status, CheckResult.message, CheckResult.evidence
    ).where(CheckResult.scan_run_id == run_id, CheckResult.account_id == account_id)
    with engine.connect() as conn:
        return {row.check_key: tuple(row[1:]) for row in conn.execute(query)}


def _member_client(seeded, account_id: str, service: str, region: str):
    credentials = seeded.session.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{ADMIN_ROLE_NAME}",
        RoleSessionName="incremental-test",
    )["Credentials"]
    return seeded.session.client(
        service,
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def test_unchanged_accounts_are_skipped_and_their_verdicts_carried_over(
    fresh_sandbox, db_engine, simulated, caplog
):
    scan = _scanner(fresh_sandbox, db_engine)
    first = scan()
    assert first.unchanged_accounts == 0 and simulated
    accounts = set(_reads(db_engine, first.run_id))
    simulated.clear()

    with caplog.at_level(logging.INFO, logger="scanner.incremental"):
        second = scan()

    assert "incremental scan: 2 of 2 accounts unchanged" in caplog.text
    assert simulated == []  # the simulator was not asked about any account
    assert second.unchanged_accounts == len(accounts) == 2
    assert _reads(db_engine, second.run_id) == dict.fromkeys(accounts, first.run_id)
    for account_id in accounts:
        carried = _verdicts(db_engine, second.run_id, account_id)
        assert carried and carried == _verdicts(db_engine, first.run_id, account_id)
    # every consumer sees a complete run: totals, the report's verdicts, no drift
    assert second.totals.checks_total == first.totals.checks_total > 0
    assert second.totals.status == "succeeded" and second.totals.drift == {}
    assert sorted((r.key, r.status) for r in second.summary.results) == sorted(
        (r.key, r.status) for r in first.summary.results
    )
    with db_engine.connect() as conn:
        current = conn.execute(text("SELECT DISTINCT last_scan_run_id FROM check_state")).all()
    assert current == [(second.run_id,)]


def test_a_key_policy_edit_is_decided_again(fresh_sandbox, db_engine, simulated):
    scan = _scanner(fresh_sandbox, db_engine)
    first = scan()
    changed = fresh_sandbox.sandbox.by_name(CHANGED)
    untouched = fresh_sandbox.sandbox.by_name(UNTOUCHED).account_id
    region = fresh_sandbox.sandbox.regions[0]
    kms = _member_client(fresh_sandbox, changed.account_id, "kms", region)
    policy = json.loads(
        kms.get_key_policy(KeyId=changed.key_arns[region], PolicyName="default")["Policy"]
    )
    policy["Statement"].append(
        {
            "Sid": "DenyGrantsToBackupOperator",
            "Effect": "Deny",
            "Principal": {"AWS": changed.role_arn},
            "Action": "kms:CreateGrant",
            "Resource": "*",
        }
    )
    kms.put_key_policy(
        KeyId=changed.key_arns[region], PolicyName="default", Policy=json.dumps(policy)
    )
    simulated.clear()

    second = scan()

    assert _reads(db_engine, second.run_id) == {
        changed.account_id: None,
        untouched: first.run_id,
    }
    assert set(simulated) == {changed.account_id}
    failing = {
        (r.region, r.check, r.deciding_layer)
        for r in second.summary.results
        if r.account_id == changed.account_id and r.status == "fail"
    }
    assert (region, "kms:CreateGrant", "resource_policy") in failing
    assert second.totals.drift.get("regressed", 0) >= 1


def test_a_policy_reading_the_time_of_the_scan_is_never_skipped(
    fresh_sandbox, db_engine, simulated
):
    timed = fresh_sandbox.sandbox.by_name(CHANGED).account_id
    iam = _member_client(fresh_sandbox, timed, "iam", fresh_sandbox.sandbox.regions[0])
    iam.put_role_policy(
        RoleName=BACKUP_ROLE_NAME,
        PolicyName="OfficeHours",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "backup:ListBackupVaults",
                        "Resource": "*",
                        "Condition": {
                            "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}
                        },
                    }
                ],
            }
        ),
    )
    scan = _scanner(fresh_sandbox, db_engine)
    first = scan()
    simulated.clear()

    second = scan()

    untouched = fresh_sandbox.sandbox.by_name(UNTOUCHED).account_id
    assert _reads(db_engine, second.run_id) == {timed: None, untouched: first.run_id}
    assert set(simulated) == {timed}
    with db_engine.connect() as conn:
        fingerprints = dict(
            conn.execute(
                select(AccountScan.account_id, AccountScan.evidence_fingerprint).where(
                    AccountScan.scan_run_id == second.run_id
                )
            ).all()
        )
    assert fingerprints[timed] is None and fingerprints[untouched] is not None


def test_full_forces_every_account_to_be_decided(fresh_sandbox, db_engine, simulated):
    scan = _scanner(fresh_sandbox, db_engine)
    scan()
    simulated.clear()

    full = scan(full=True)

    assert full.unchanged_accounts == 0
    assert set(_reads(db_engine, full.run_id).values()) == {None}
    assert len(set(simulated)) == 2
    # a full scan still fingerprints: the next incremental scan can skip from it
    simulated.clear()
    after = scan()
    assert after.unchanged_accounts == 2 and simulated == []
    assert set(_reads(db_engine, after.run_id).values()) == {full.run_id}


def test_verdicts_decided_longer_ago_than_the_maximum_age_are_decided_again(
    fresh_sandbox, db_engine, simulated
):
    scan = _scanner(fresh_sandbox, db_engine, max_age_hours=1)
    first = scan()
    carried = scan()  # carries the first run's verdicts: their age is the first run's
    assert carried.unchanged_accounts == 2
    with db_engine.begin() as conn:  # two hours pass; the carrying run stays recent
        conn.execute(
            text(
                "UPDATE scan_runs SET started_at = started_at - interval '2 hours' WHERE id = :id"
            ),
            {"id": first.run_id},
        )
        conn.execute(
            text(
                "UPDATE account_scans SET verdicts_decided_at = verdicts_decided_at"
                " - interval '2 hours' WHERE scan_run_id = :id"
            ),
            {"id": carried.run_id},
        )
    simulated.clear()

    third = scan()

    assert third.unchanged_accounts == 0 and len(set(simulated)) == 2
    assert set(_reads(db_engine, third.run_id).values()) == {None}
