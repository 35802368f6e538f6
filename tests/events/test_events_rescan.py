"""Plans carried out against a sandbox organization in moto and a real PostgreSQL: role
rescans with drift limited to their scope, SCP changes re-decided from stored evidence
without a call to any member account."""

from __future__ import annotations

import json

from sqlalchemy import text

from scanner.aws.calls import AMBIENT, CallRecorder
from scanner.events.coalesce import coalesce
from scanner.events.rescan import run_plan
from scanner.events.scope import PolicyChange, Rescan
from scanner.runner import run_scan
from scanner.sandbox import BACKUP_ROLE_NAME, break_account
from storage.metrics_queries import last_finished_run
from storage.repository import drift_events, latest_results


def _gone(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM check_state WHERE status = 'gone'")).scalar()


def _scan(sandbox, engine):
    report = run_scan(sandbox.settings, engine=engine, sessions=sandbox.sessions())
    assert report.totals.checks_total > 0
    return report


def test_a_role_change_rescans_one_account_and_records_the_regression(sandbox, db_engine):
    first = _scan(sandbox, db_engine)
    victim = sandbox.sandbox.healthy_accounts[0]
    break_account(sandbox.session, sandbox.sandbox, victim.account_id)
    plan = coalesce([Rescan(victim.account_id, BACKUP_ROLE_NAME)] * 50)
    assert plan.coalesced == 49
    report = run_plan(plan, sandbox.settings, db_engine, sandbox.sessions())
    assert report.accounts_collected == [victim.account_id]
    events = drift_events(db_engine, run_id=report.run_id)
    assert events and {(e["account_id"], e["kind"]) for e in events} == {
        (victim.account_id, "regressed")
    }
    # the event run covered one role of one account: nothing else became gone
    assert _gone(db_engine) == 0
    with db_engine.connect() as conn:
        trigger = conn.execute(
            text("SELECT trigger FROM scan_runs WHERE id = :id"), {"id": report.run_id}
        ).scalar()
    assert trigger == "event"
    # "the last scan" of the metrics stays the full one: a stalled scheduler still shows
    with db_engine.connect() as conn:
        assert last_finished_run(conn).id == first.run_id


def test_a_deleted_role_is_gone_but_only_in_its_own_scope(sandbox, db_engine):
    _scan(sandbox, db_engine)
    victim = sandbox.sandbox.healthy_accounts[0]
    from scanner.sandbox import _Seeder

    iam = _Seeder(sandbox.session, sandbox.sandbox.regions).member_client(
        victim.account_id, "iam", sandbox.sandbox.regions[0]
    )
    for name in iam.list_role_policies(RoleName=BACKUP_ROLE_NAME)["PolicyNames"]:
        iam.delete_role_policy(RoleName=BACKUP_ROLE_NAME, PolicyName=name)
    for policy in iam.list_attached_role_policies(RoleName=BACKUP_ROLE_NAME)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=BACKUP_ROLE_NAME, PolicyArn=policy["PolicyArn"])
    iam.delete_role(RoleName=BACKUP_ROLE_NAME)
    report = run_plan(
        coalesce([Rescan(victim.account_id, BACKUP_ROLE_NAME)]),
        sandbox.settings,
        db_engine,
        sandbox.sessions(),
    )
    gone = [e for e in drift_events(db_engine, run_id=report.run_id) if e["kind"] == "gone"]
    assert gone and {e["account_id"] for e in gone} == {victim.account_id}
    assert all(e["role_arn"].endswith(f"/{BACKUP_ROLE_NAME}") for e in gone)
    assert _gone(db_engine) == len(gone)


def _scp_failures(engine, account_id):
    return [
        row
        for row in latest_results(engine, account_id=account_id, status="fail")
        if row["deciding_layer"] == "scp"
    ]


def test_an_scp_attached_at_an_ou_is_re_decided_without_member_account_calls(sandbox, db_engine):
    _scan(sandbox, db_engine)
    org = sandbox.sandbox
    victim = org.healthy_accounts[0]
    ou_id = org.ou_ids[victim.ou_names[-1]]
    deny = org.policy_ids["DenyBackupVaultCreation"]
    sandbox.session.client("organizations", region_name=org.regions[0]).attach_policy(
        PolicyId=deny, TargetId=ou_id
    )
    recorder = CallRecorder()
    report = run_plan(
        coalesce([PolicyChange(deny, ou_id)]),
        sandbox.settings,
        db_engine,
        sandbox.sessions(recorder),
    )
    # only Organizations reads with the scanner's own identity: no AssumeRole, no member call
    assert set(recorder.by_account) == {AMBIENT}
    assert set(recorder.actions()) <= {
        "organizations:DescribePolicy",
        "organizations:ListPoliciesForTarget",
    }
    assert report.accounts_collected == []
    assert victim.account_id in report.accounts_redecided
    failures = _scp_failures(db_engine, victim.account_id)
    assert failures and all(deny in (row["policy"] or "") for row in failures)
    regressed = [
        e for e in drift_events(db_engine, run_id=report.run_id) if e["kind"] == "regressed"
    ]
    assert victim.account_id in {e["account_id"] for e in regressed}
    assert _gone(db_engine) == 0


def test_an_scp_content_change_is_re_decided_where_the_policy_applies(sandbox, db_engine):
    _scan(sandbox, db_engine)
    org = sandbox.sandbox
    legacy = org.by_cause("scp-deny")
    assert _scp_failures(db_engine, legacy.account_id)
    deny = org.policy_ids["DenyBackupVaultCreation"]
    harmless = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "NoBucketDeletion",
                "Effect": "Deny",
                "Action": "s3:DeleteBucket",
                "Resource": "*",
            }
        ],
    }
    sandbox.session.client("organizations", region_name=org.regions[0]).update_policy(
        PolicyId=deny, Content=json.dumps(harmless)
    )
    recorder = CallRecorder()
    report = run_plan(
        coalesce([PolicyChange(deny)]), sandbox.settings, db_engine, sandbox.sessions(recorder)
    )
    assert set(recorder.by_account) == {AMBIENT}
    assert report.accounts_redecided == [legacy.account_id]
    assert _scp_failures(db_engine, legacy.account_id) == []
    fixed = [e for e in drift_events(db_engine, run_id=report.run_id) if e["kind"] == "fixed"]
    assert fixed and {e["account_id"] for e in fixed} == {legacy.account_id}


def test_an_event_rescan_waits_while_a_scan_holds_the_account(sandbox, db_engine):
    import threading

    from storage.locks import AccountLocks

    _scan(sandbox, db_engine)
    victim = sandbox.sandbox.healthy_accounts[0]
    scheduled = AccountLocks(db_engine)  # as the scheduled runner holds it per account
    assert scheduled.try_acquire(victim.account_id)
    done = threading.Event()
    reports = []

    def rescan() -> None:
        plan = coalesce([Rescan(victim.account_id, BACKUP_ROLE_NAME)])
        reports.append(run_plan(plan, sandbox.settings, db_engine, sandbox.sessions()))
        done.set()

    worker = threading.Thread(target=rescan, daemon=True)
    worker.start()
    try:
        assert not done.wait(3.0), "the rescan read an account a scan was reading"
    finally:
        scheduled.release(victim.account_id)
        scheduled.close()
    assert done.wait(120.0)
    assert reports[0].accounts_collected == [victim.account_id]


def test_a_key_reaches_its_owner_and_every_account_whose_checks_use_it(sandbox, db_engine):
    from scanner.model import AccountOutcome, CheckResult
    from storage.event_queries import accounts_using_key
    from storage.repository import finish_run, record_outcomes, start_run

    _scan(sandbox, db_engine)
    owner = sandbox.sandbox.healthy_accounts[0]
    key_arn = owner.key_arns[sandbox.sandbox.regions[0]]
    assert accounts_using_key(db_engine, key_arn) == [owner.account_id]
    # a consumer in another account: its checks name the owner's key
    consumer = sandbox.sandbox.healthy_accounts[1]
    run_id = start_run(
        db_engine,
        trigger="cli",
        host="test",
        config_fingerprint="",
        simulator_source="test",
        accounts_total=1,
    )
    from scanner.model import Account

    record_outcomes(
        db_engine,
        run_id,
        [
            AccountOutcome(
                Account(consumer.account_id, consumer.name),
                "ok",
                results=[
                    CheckResult(
                        account_id=consumer.account_id,
                        region=sandbox.sandbox.regions[0],
                        role_arn=consumer.role_arn,
                        check="kms:CreateGrant (central key)",
                        resource=key_arn,
                        status="pass",
                    )
                ],
            )
        ],
    )
    finish_run(db_engine, run_id, scope=[])
    assert accounts_using_key(db_engine, key_arn) == sorted([owner.account_id, consumer.account_id])
    # by key id too, as DisableKey's request names it
    assert consumer.account_id in accounts_using_key(db_engine, key_arn.rsplit("/", 1)[-1])
