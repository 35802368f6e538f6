"""Incremental scans shared by two replicas: each replica reaches the decision a single
process would (an unchanged account carried, a changed one decided again), and the
starting replica's choice (incremental or full) holds for every replica.

Both replicas run in this process on threads, against the sandbox organization in moto;
PostgreSQL is their only link (the claims, the stored organization and plan). A replica
killed with SIGKILL mid-scan: tests/scan/test_shared_scan.py."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select, text

from scanner.engine_simulator import EngineSimulator
from scanner.incremental import evidence_fingerprint
from scanner.org_snapshot import from_json, to_json
from scanner.runner import run_scan
from scanner.sandbox import ADMIN_ROLE_NAME, sandbox_settings
from scanner.shared_scan import join_shared_scans
from storage.models import AccountScan, CheckResult
from storage.work_queue import open_shared_runs

CHANGED = "workloads-shared"  # its key policy is edited between two scans


@pytest.fixture
def simulated(monkeypatch):
    """The accounts the simulator is asked about, by thread (replica)."""
    asked: Counter[str] = Counter()
    simulate = EngineSimulator.simulate

    def counting(self, iam, role, account, region, requests):
        asked[account.id] += 1
        return simulate(self, iam, role, account, region, requests)

    monkeypatch.setattr(EngineSimulator, "simulate", counting)
    return asked


def _settings(seeded, **overrides):
    # one account at a time per replica, so that the joining replica finds work
    return sandbox_settings(
        seeded.sandbox, **{"incremental": {"enabled": True}, "concurrency": 1, **overrides}
    )


def _two_replicas(seeded, engine, *, full=False, joiner_settings=None):
    """A shared scan led here and joined by a second replica on a thread; returns the
    leader's report and how many accounts the second replica recorded."""
    settings = _settings(seeded, share_scans=True)
    joined: list[int] = []

    def join() -> None:
        deadline = time.monotonic() + 60
        while not open_shared_runs(engine) and time.monotonic() < deadline:
            time.sleep(0.01)
        mine = joiner_settings or settings
        joined.append(
            join_shared_scans(mine, engine, host="second-replica", sessions=seeded.sessions(mine))
        )

    helper = threading.Thread(target=join, name="second-replica")
    helper.start()
    try:
        report = run_scan(settings, engine=engine, sessions=seeded.sessions(settings), full=full)
    finally:
        helper.join(timeout=120)
    assert not helper.is_alive()
    return report, joined[0]


def _single(seeded, engine, **overrides):
    settings = _settings(seeded, **overrides)
    return run_scan(settings, engine=engine, sessions=seeded.sessions(settings))


def _reads(engine, run_id: int) -> dict[str, tuple]:
    """Account id -> (status, carried from run, evidence fingerprint)."""
    query = select(
        AccountScan.account_id,
        AccountScan.status,
        AccountScan.carried_from_run_id,
        AccountScan.evidence_fingerprint,
    ).where(AccountScan.scan_run_id == run_id)
    with engine.connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(query)}


def _verdicts(engine, run_id: int) -> dict[str, tuple]:
    query = select(
        CheckResult.check_key, CheckResult.status, CheckResult.message, CheckResult.evidence
    ).where(CheckResult.scan_run_id == run_id)
    with engine.connect() as conn:
        return {row.check_key: tuple(row[1:]) for row in conn.execute(query)}


def _replicas(engine, run_id: int) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT claimed_by FROM scan_work WHERE scan_run_id = :id AND state = 'done'"),
            {"id": run_id},
        )
        return Counter(row[0] for row in rows)


def _carried_by(engine, run_id: int, host: str) -> int:
    """Accounts of the run `host` recorded with carried verdicts."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM scan_work w JOIN account_scans a"
                " ON a.scan_run_id = w.scan_run_id AND a.account_id = w.account_id"
                " WHERE w.scan_run_id = :id AND w.claimed_by = :host"
                " AND a.carried_from_run_id IS NOT NULL"
            ),
            {"id": run_id, "host": host},
        ).scalar_one()


def test_the_stored_organization_gives_every_account_the_same_fingerprint(fresh_sandbox):
    """What a joining replica fingerprints with (the organization as stored in
    PostgreSQL) must give the fingerprint the discovering process gives."""
    from scanner.aws.collect import collect_account
    from scanner.aws.organizations import discover
    from scanner.engine_simulator import EngineSimulator as Engine
    from scanner.profiles import load_profiles

    settings = _settings(fresh_sandbox)
    sessions = fresh_sandbox.sessions(settings)
    organization = discover(sessions, settings)
    stored = from_json(json.loads(json.dumps(to_json(organization))))
    profiles = load_profiles(settings)
    compared = 0
    for account in organization.accounts:
        collection = collect_account(
            sessions, settings, profiles, account, organization, Engine(organization)
        )
        if collection.error:
            continue
        mine = evidence_fingerprint("basis", organization, collection)
        theirs = evidence_fingerprint("basis", stored, collection)
        assert mine is not None and mine == theirs, account.id
        compared += 1
    assert compared >= len(fresh_sandbox.sandbox.healthy_accounts)


def test_an_unchanged_organization_rescanned_by_two_replicas_carries_every_account(
    fresh_sandbox, db_engine, simulated
):
    single = _single(fresh_sandbox, db_engine)  # a single process records fingerprints
    first = _reads(db_engine, single.run_id)
    readable = {account for account, (status, _, _) in first.items() if status == "ok"}
    assert len(readable) >= 4 and simulated
    simulated.clear()

    # the joining replica's own settings do not turn incremental on: the run's choice is
    # the starting replica's
    joiner = _settings(fresh_sandbox, share_scans=True, incremental={"enabled": False})
    shared, joined = _two_replicas(fresh_sandbox, db_engine, joiner_settings=joiner)

    assert joined > 0 and len(_replicas(db_engine, shared.run_id)) == 2
    second = _reads(db_engine, shared.run_id)
    assert set(second) == set(first)  # every account exactly once
    carried = {account for account, (_, origin, _) in second.items() if origin is not None}
    assert carried == readable
    assert _carried_by(db_engine, shared.run_id, "second-replica") > 0
    assert {second[account][1] for account in carried} == {single.run_id}
    # the same fingerprints the single process took, whichever replica read the account
    assert {a: second[a][2] for a in readable} == {a: first[a][2] for a in readable}
    assert not set(simulated) & readable  # no readable account was decided again
    assert shared.unchanged_accounts == len(readable)
    assert shared.totals.status == "succeeded" and shared.totals.drift == {}
    assert _verdicts(db_engine, shared.run_id) == _verdicts(db_engine, single.run_id)

    # --full on the starting replica decides every account afresh, on both replicas
    simulated.clear()
    full, joined = _two_replicas(fresh_sandbox, db_engine, full=True)
    third = _reads(db_engine, full.run_id)
    assert joined > 0 and full.unchanged_accounts == 0
    assert {origin for _, origin, _ in third.values()} == {None}
    assert set(simulated) >= readable
    # ... and still records the fingerprints the next incremental scan compares
    assert {a: third[a][2] for a in readable} == {a: first[a][2] for a in readable}


def test_a_change_in_one_account_is_decided_again_and_shows_as_drift(
    fresh_sandbox, db_engine, simulated
):
    first, _ = _two_replicas(fresh_sandbox, db_engine)  # nothing to carry yet: all decided
    before = _reads(db_engine, first.run_id)
    assert {origin for _, origin, _ in before.values()} == {None}
    readable = {account for account, (status, _, _) in before.items() if status == "ok"}
    changed = fresh_sandbox.sandbox.by_name(CHANGED)
    region = fresh_sandbox.sandbox.regions[0]
    _deny_grants(fresh_sandbox, changed, region)
    simulated.clear()

    second, joined = _two_replicas(fresh_sandbox, db_engine)

    assert joined > 0 and _carried_by(db_engine, second.run_id, "second-replica") > 0
    after = _reads(db_engine, second.run_id)
    assert set(after) == set(before)
    assert after[changed.account_id][1] is None  # decided again
    assert after[changed.account_id][2] != before[changed.account_id][2]
    assert {a for a in readable if after[a][1] == first.run_id} == readable - {changed.account_id}
    assert set(simulated) & readable == {changed.account_id}
    assert second.unchanged_accounts == len(readable) - 1
    failing = _verdicts(db_engine, second.run_id)
    key = next(
        k
        for k in failing
        if k.startswith(f"{changed.account_id}|{region}|") and k.endswith("|kms:CreateGrant")
    )
    assert failing[key][0] == "fail"
    assert second.totals.drift.get("regressed", 0) >= 1


def _deny_grants(seeded, account, region: str) -> None:
    """Edit the account's vault key policy: its backup role may no longer create grants."""
    credentials = seeded.session.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{account.account_id}:role/{ADMIN_ROLE_NAME}",
        RoleSessionName="shared-incremental-test",
    )["Credentials"]
    kms = seeded.session.client(
        "kms",
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    key = account.key_arns[region]
    policy = json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"])
    policy["Statement"].append(
        {
            "Sid": "DenyGrantsToBackupOperator",
            "Effect": "Deny",
            "Principal": {"AWS": account.role_arn},
            "Action": "kms:CreateGrant",
            "Resource": "*",
        }
    )
    kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(policy))
