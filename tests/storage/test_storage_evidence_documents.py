"""Scenario documents stored once by content hash, read back exactly as recorded."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, create_engine, pool, text

from alembic import command
from scanner.decide import build_scenario
from scanner.decide.scenarios import stored_scenario
from scanner.model import Account, AccountOutcome, CheckResult, NamedPolicy, OrgUnit, Role
from scanner.policy import Scenario, evaluate
from storage import repository as repo
from storage.db import normalise_url
from storage.event_queries import stored_verdicts
from storage.migrate import alembic_config, upgrade
from storage.retention import prune

OU_PATH = (OrgUnit("r-ab12", "Root"), OrgUnit("ou-ab12-11111111", "Prod"))
FULL_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
DENY_DELETE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "NoVaultDelete",
            "Effect": "Deny",
            "Action": "backup:DeleteBackupVault",
            "Resource": "*",
        }
    ],
}
ACTIONS = ("backup:StartBackupJob", "backup:DeleteBackupVault", "kms:Decrypt")


def _verdict(account: Account, action: str) -> CheckResult:
    """A verdict decided by the engine, carrying its scenario as a scan stores it."""
    own_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["backup:*", "kms:Decrypt"],
                "Resource": "*",
                "Sid": account.id,
            }
        ],
    }
    role = Role(
        arn=f"arn:aws:iam::{account.id}:role/BackupOperator",
        name="BackupOperator",
        inline_policies=[NamedPolicy("operator", own_policy)],
    )
    scps = [
        [NamedPolicy("p-full (FullAWSAccess)", FULL_ACCESS)],
        [
            NamedPolicy("p-full (FullAWSAccess)", FULL_ACCESS),
            NamedPolicy("p-deny (NoVaultDelete)", DENY_DELETE),
        ],
    ]
    scenario = build_scenario(
        role=role, account=account, action=action, resource="*", context={}, scps=scps, rcps=[]
    )
    evaluation = evaluate(scenario)
    return CheckResult(
        account_id=account.id,
        region="eu-west-1",
        role_arn=role.arn,
        check=action,
        resource="*",
        status="pass" if str(evaluation.decision) == "allowed" else "fail",
        decision=evaluation.decision,
        deciding_layer=evaluation.deciding_layer,
        scenario=stored_scenario(scenario, evaluation.decision, evaluation.deciding_layer),
        explanation={"decision": str(evaluation.decision)},
    )


def _outcome(account_id: str) -> AccountOutcome:
    account = Account(id=account_id, name=f"acct-{account_id[-4:]}", ou_path=OU_PATH)
    return AccountOutcome(
        account=account,
        status="ok",
        results=[_verdict(account, action) for action in ACTIONS],
        api_calls=Counter({"iam:SimulatePrincipalPolicy": len(ACTIONS)}),
    )


def _recorded(engine: Engine, outcomes: list[AccountOutcome]) -> int:
    run_id = repo.start_run(
        engine,
        trigger="cli",
        host="t",
        config_fingerprint="",
        simulator_source="engine",
        accounts_total=len(outcomes),
    )
    repo.record_outcomes(engine, run_id, outcomes)
    repo.finish_run(engine, run_id)
    return run_id


def _scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def _recorded_scenarios(outcomes: list[AccountOutcome]) -> dict[str, dict]:
    return {r.key: r.scenario for o in outcomes for r in o.results}


def test_shared_documents_are_stored_once(engine: Engine) -> None:
    outcomes = [_outcome("111111111111"), _outcome("222222222222")]
    _recorded(engine, outcomes)
    _recorded(engine, outcomes)  # a second run stores no document again
    # FULL_ACCESS and DENY_DELETE shared by every check, plus each account's own policy
    assert _scalar(engine, "SELECT count(*) FROM evidence_documents") == 4
    assert _scalar(engine, "SELECT count(*) FROM check_results") == 12
    # no result keeps a document inline: only indexes into its hash list
    inline = "SELECT count(*) FROM check_results WHERE evidence::text LIKE '%Statement%'"
    assert _scalar(engine, inline) == 0


def test_readers_get_the_recorded_scenario_back_and_it_replays_to_the_verdict(
    engine: Engine,
) -> None:
    outcomes = [_outcome("111111111111"), _outcome("222222222222")]
    recorded = _recorded_scenarios(outcomes)
    _recorded(engine, outcomes)

    rows = repo.latest_results(engine)
    assert {row["check_key"]: row["evidence"]["scenario"] for row in rows} == recorded
    assert all("documents" not in row["evidence"] for row in rows)
    for row in rows:
        evaluation = evaluate(Scenario.from_dict(row["evidence"]["scenario"]))
        assert str(evaluation.decision) == row["decision"]
    assert {row["status"] for row in rows} == {"pass", "fail"}

    verdicts = stored_verdicts(engine, policy_id="p-deny")
    assert {row["check_key"]: row["evidence"]["scenario"] for row in verdicts} == recorded


def test_unused_documents_go_with_the_results_pruned(engine: Engine) -> None:
    old = [_outcome("111111111111"), _outcome("222222222222")]
    _recorded(engine, old)
    _recorded(engine, [_outcome("111111111111")])  # 222222222222 is gone, kept as state
    with engine.begin() as conn:
        conn.execute(text("UPDATE scan_runs SET started_at = started_at - interval '30 days'"))
        conn.execute(text("DELETE FROM check_state WHERE account_id = '222222222222'"))
    result = prune(engine, keep_days=7, now=datetime.now(UTC) + timedelta(days=1))
    assert result.evidence_documents == 1  # 222222222222's own policy
    assert _scalar(engine, "SELECT count(*) FROM evidence_documents") == 3
    rows = repo.latest_results(engine)
    assert {row["check_key"]: row["evidence"]["scenario"] for row in rows} == _recorded_scenarios(
        [_outcome("111111111111")]
    )


def _engine(url: str) -> Engine:
    return create_engine(normalise_url(url), poolclass=pool.NullPool)


# Rows as a scan at revision 0004 wrote them (the models are already at head).
_INSERT_RUN = text(
    """
    INSERT INTO scan_runs (status, trigger, host, config_fingerprint, simulator_source,
        accounts_total, accounts_scanned, accounts_errored, checks_total, checks_passed,
        checks_failed, checks_errored, disagreements)
    VALUES ('running', 'cli', 'h', '', 'engine', 2, 0, 0, 0, 0, 0, 0, 0) RETURNING id
    """
)
_INSERT_RESULT = text(
    """
    INSERT INTO check_results (scan_run_id, check_key, account_id, region, role_arn, "check",
        resource, status, disagreement, message, evidence)
    VALUES (:run, :key, :account, 'eu-west-1', 'r', 'c', '*', 'pass', false, '',
        CAST(:evidence AS jsonb))
    """
)


def _migrate(engine: Engine, url: str, revision: str, *, down: bool = False) -> None:
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_migration_converts_inline_evidence_and_back(database_url: str) -> None:
    engine = _engine(database_url)
    try:
        _migrate(engine, database_url, "0004")
        outcomes = [_outcome("111111111111"), _outcome("222222222222")]
        inline = {
            r.key: {
                "scenario": r.scenario,
                "explanation": r.explanation,
                "confidence": r.confidence,
            }
            for o in outcomes
            for r in o.results
        }
        with engine.begin() as conn:
            run_id = conn.execute(_INSERT_RUN).scalar_one()
            for key, evidence in inline.items():
                row = {"run": run_id, "key": key, "account": key[:12]}
                conn.execute(_INSERT_RESULT, {**row, "evidence": repo.dumps_json(evidence)})
        upgrade(database_url)
        assert _scalar(engine, "SELECT count(*) FROM evidence_documents") == 4
        assert (
            _scalar(engine, "SELECT count(*) FROM check_results WHERE evidence ? 'documents'") == 6
        )
        repo.finish_run(engine, run_id)
        rows = repo.latest_results(engine)
        assert {row["check_key"]: row["evidence"] for row in rows} == inline

        _migrate(engine, database_url, "0004", down=True)
        with engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT check_key, evidence FROM check_results")).all())
            tables = conn.execute(text("SELECT to_regclass('evidence_documents')")).scalar()
        assert stored == copy.deepcopy(inline)
        assert tables is None
    finally:
        engine.dispose()
