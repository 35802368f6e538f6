"""Scans recorded straight through storage (no AWS): a few accounts whose checks pass or
fail as a test says, with a stored fix on every failure, so outlets have something real
to read."""

from __future__ import annotations

from sqlalchemy import Engine

from scanner.model import Account, AccountOutcome, CheckResult, OrgUnit
from storage.repository import RunTotals, finish_run, record_outcomes, start_run

REGION = "eu-west-1"
OU_PATH = (OrgUnit("r-ab12", "Root"), OrgUnit("ou-ab12-11111111", "Prod"))
KEY_ARN = "arn:aws:kms:eu-west-1:{account}:key/0b7f7b5e-4b7a-4c55-9a57-3b0d1d4e2f10"


def role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/BackupOperator"


def fix(account_id: str, check: str) -> dict:
    return {
        "kind": "scp-narrow-deny",
        "target": "p-deny-backup",
        "summary": f"Narrow the SCP statement DenyBackup so it no longer denies {check}",
        "statement": {"Sid": "DenyBackup", "Effect": "Deny", "Action": "backup:Delete*"},
        "commands": [f"aws organizations update-policy --policy-id p-deny-backup # {account_id}"],
    }


def result(account_id: str, check: str, status: str) -> CheckResult:
    failing = status == "fail"
    return CheckResult(
        account_id=account_id,
        region=REGION,
        role_arn=role_arn(account_id),
        check=check,
        resource=KEY_ARN.format(account=account_id)
        if check.startswith("kms:")
        else f"arn:aws:backup:{REGION}:{account_id}:backup-vault:*",
        status=status,
        decision="explicitDeny" if failing else "allowed",
        deciding_layer="scp" if failing else None,
        policy="p-deny-backup" if failing else None,
        statement="DenyBackup" if failing else None,
        message=f"{check} is {'denied by SCP p-deny-backup' if failing else 'allowed'}",
        remediation=fix(account_id, check) if failing else None,
        scenario={"action": check},
    )


def record_scan(engine: Engine, statuses: dict[tuple[str, str], str]) -> int:
    """One finished run with a result per ((account, check) -> status); returns its id."""
    return record_scan_totals(engine, statuses).run_id


def record_scan_totals(engine: Engine, statuses: dict[tuple[str, str], str]) -> RunTotals:
    """record_scan, returning what finish_run returned."""
    run_id = start_run(
        engine,
        trigger="cli",
        host="test",
        config_fingerprint="",
        simulator_source="engine",
        accounts_total=len({account for account, _ in statuses}),
    )
    by_account: dict[str, list[CheckResult]] = {}
    for (account_id, check), status in statuses.items():
        by_account.setdefault(account_id, []).append(result(account_id, check, status))
    outcomes = [
        AccountOutcome(
            account=Account(id=account_id, name=f"acct-{account_id[-4:]}", ou_path=OU_PATH),
            status="ok",
            results=results,
        )
        for account_id, results in by_account.items()
    ]
    record_outcomes(engine, run_id, outcomes)
    return finish_run(engine, run_id)
