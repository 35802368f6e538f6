"""Builders of scan outcomes for the storage tests, and scans recorded from them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from scanner.model import Account, AccountOutcome, CheckResult, OrgUnit, check_key
from storage import repository as repo
from storage.models import ScanRun

ROLE = "arn:aws:iam::{account}:role/BackupOperator"
OU_PATH = (OrgUnit("r-ab12", "Root"), OrgUnit("ou-ab12-11111111", "Prod"))


def make_account(account_id: str, name: str | None = None) -> Account:
    return Account(id=account_id, name=name or f"acct-{account_id[-4:]}", ou_path=OU_PATH)


def make_result(account_id: str, check: str, status: str, **extra: Any) -> CheckResult:
    failing = status == "fail"
    fields: dict[str, Any] = {
        "account_id": account_id,
        "region": "eu-west-1",
        "role_arn": ROLE.format(account=account_id),
        "check": check,
        "resource": f"arn:aws:backup:eu-west-1:{account_id}:backup-vault:*",
        "status": status,
        "decision": "explicitDeny" if failing else "allowed",
        "deciding_layer": "scp" if failing else None,
        "policy": "p-deny-backup" if failing else None,
        "statement": "DenyBackup" if failing else None,
        "message": f"{check} is {status}",
        "scenario": {"action": check, "layers": {"scp": [[{"Effect": "Allow"}]]}},
        "explanation": {"decision": "denied" if failing else "allowed", "steps": [1, 2]},
    }
    fields.update(extra)
    return CheckResult(**fields)


def make_outcome(account_id: str, statuses: dict[str, str], **kwargs: Any) -> AccountOutcome:
    """An account read successfully, with one result per (check -> status)."""
    return AccountOutcome(
        account=make_account(account_id),
        status="ok",
        results=[make_result(account_id, check, status) for check, status in statuses.items()],
        api_calls=Counter({"iam:ListRoles": 1, "iam:SimulatePrincipalPolicy": len(statuses)}),
        **kwargs,
    )


def error_outcome(account_id: str, error: str = "AccessDenied on sts:AssumeRole") -> AccountOutcome:
    return AccountOutcome(account=make_account(account_id), status="error", error=error)


def key(account: str, check: str) -> str:
    """The check key of `check` for ROLE in `account` (eu-west-1), as make_result stores it."""
    return check_key(account, "eu-west-1", ROLE.format(account=account), check)


def run(
    engine: Engine, outcomes: list[AccountOutcome], *, interrupt: bool = False
) -> tuple[int, datetime]:
    """A scheduled scan recording `outcomes`, finished (or interrupted by a shutdown);
    its id and start time."""
    run_id = repo.start_run(
        engine,
        trigger="schedule",
        host="t",
        config_fingerprint="f",
        simulator_source="aws",
        accounts_total=len(outcomes),
    )
    repo.record_outcomes(engine, run_id, outcomes)
    if interrupt:
        repo.mark_interrupted(engine, run_id, "shutdown")
    else:
        repo.finish_run(engine, run_id)
    with engine.connect() as conn:
        started = conn.execute(select(ScanRun.started_at).where(ScanRun.id == run_id)).scalar_one()
    return run_id, started
