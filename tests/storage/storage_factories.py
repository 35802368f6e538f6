"""Builders of scan outcomes for the storage tests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from scanner.model import Account, AccountOutcome, CheckResult, OrgUnit

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
