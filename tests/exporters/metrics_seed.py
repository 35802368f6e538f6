"""Rows written straight into the schema, so the collector is tested without a scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from storage.models import Account, AccountScan, CheckState, DriftEvent, DriftTotal, ScanRun

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def add_run(session: Session, status: str, started: datetime, minutes: float, **counts: int) -> int:
    run = ScanRun(
        status=status,
        started_at=started,
        finished_at=None if status == "running" else started + timedelta(minutes=minutes),
        **counts,
    )
    session.add(run)
    session.flush()
    return run.id


def seed_small(engine: Engine) -> dict[str, int]:
    """Two OUs, three accounts; one account unreachable in the last scan, one role failing
    on two checks (SCP), one disagreement, drift events of two kinds."""
    with Session(engine) as session, session.begin():
        old = add_run(session, "succeeded", NOW - timedelta(hours=7), 2, accounts_total=3)
        last = add_run(
            session,
            "partial",
            NOW - timedelta(hours=1),
            3,
            accounts_total=3,
            accounts_scanned=2,
            accounts_errored=1,
            disagreements=1,
        )
        session.add_all(
            [
                Account(
                    account_id="111111111111",
                    name="prod-a",
                    ou_path="r-ab12/ou-ab12-11111111",
                    ou_path_names="Root/Prod",
                ),
                Account(
                    account_id="222222222222",
                    name="prod-b",
                    ou_path="r-ab12/ou-ab12-11111111",
                    ou_path_names="Root/Prod",
                ),
                Account(
                    account_id="333333333333",
                    name="dev-a",
                    ou_path="r-ab12/ou-ab12-22222222",
                    ou_path_names="Root/Dev",
                ),
            ]
        )
        session.flush()
        session.add_all(
            [
                AccountScan(scan_run_id=last, account_id="111111111111", status="ok"),
                AccountScan(scan_run_id=last, account_id="222222222222", status="ok"),
                AccountScan(
                    scan_run_id=last,
                    account_id="333333333333",
                    status="error",
                    error="AccessDenied on sts:AssumeRole",
                ),
            ]
        )
        role = "arn:aws:iam::{}:role/team/BackupRole"
        rows = []
        for account in ("111111111111", "222222222222"):
            for check in ("backup:CreateBackupVault", "kms:CreateGrant", "kms:Decrypt"):
                failing = account == "222222222222" and check != "backup:CreateBackupVault"
                rows.append(
                    CheckState(
                        check_key=f"{account}|eu-west-1|{role.format(account)}|{check}",
                        account_id=account,
                        region="eu-west-1",
                        role_arn=role.format(account),
                        check=check,
                        status="fail" if failing else "pass",
                        deciding_layer="scp" if failing else None,
                        disagreement=(account == "111111111111" and check == "kms:Decrypt"),
                        last_scan_run_id=last,
                        failing_since=NOW - timedelta(hours=7) if failing else None,
                    )
                )
        # a check whose role disappeared: never counted
        rows.append(
            CheckState(
                check_key="111111111111|eu-west-1|gone|kms:Decrypt",
                account_id="111111111111",
                region="eu-west-1",
                role_arn="arn:aws:iam::111111111111:role/Old",
                check="kms:Decrypt",
                status="gone",
                last_scan_run_id=old,
            )
        )
        session.add_all(rows)
        session.flush()
        for kind in ("regressed", "regressed", "new"):
            session.add(
                DriftEvent(
                    scan_run_id=last,
                    check_key="k",
                    account_id="222222222222",
                    region="eu-west-1",
                    role_arn=role.format("222222222222"),
                    check="kms:Decrypt",
                    kind=kind,
                )
            )
        # what finish_run adds to the running totals the counters export
        session.add_all([DriftTotal(kind="regressed", events=2), DriftTotal(kind="new", events=1)])
        return {"old": old, "last": last}
