"""What an incremental scan reads back: each account's latest read with its evidence
fingerprint, and the verdicts an unchanged account carries over (for callers that show
them; the copy itself is storage.repository.write_outcomes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select, true
from sqlalchemy.dialects.postgresql import distinct_on

from scanner.model import CheckResult as CheckVerdict
from scanner.model import Decision, Layer
from scanner.vocabulary import AccountStatus, CheckStatus
from storage.models import AccountScan, CheckResult, ScanRun


@dataclass(frozen=True)
class LatestRead:
    """An account's latest read whose verdicts are still stored."""

    run_id: int
    evidence_fingerprint: str
    decided_at: datetime  # when its verdicts were decided (earlier when it carried them)


def latest_reads(
    engine: Engine, *, not_before: datetime, before_run: int | None = None
) -> dict[str, LatestRead]:
    """Account id -> its latest read, when that read succeeded, has a fingerprint, its
    run's results were not pruned and its verdicts were decided at or after
    `not_before`. An account whose latest read is anything else (an error, an
    event-driven rescan, a time-dependent read, old verdicts) is left out: it must be
    read and decided again. With `before_run`, only reads of earlier runs count: a
    replica joining a shared scan sees what the scan's start saw, not the accounts the
    scan itself already recorded."""
    latest = (
        select(
            AccountScan.account_id,
            AccountScan.scan_run_id,
            AccountScan.status,
            AccountScan.evidence_fingerprint,
            func.coalesce(AccountScan.verdicts_decided_at, ScanRun.started_at).label("decided_at"),
            ScanRun.pruned_at,
        )
        .join(ScanRun, ScanRun.id == AccountScan.scan_run_id)
        .where(ScanRun.started_at >= not_before)
        .where(AccountScan.scan_run_id < before_run if before_run is not None else true())
        .ext(distinct_on(AccountScan.account_id))
        .order_by(AccountScan.account_id, AccountScan.scan_run_id.desc())
    )
    with engine.connect() as conn:
        rows = conn.execute(latest).all()
    return {
        row.account_id: LatestRead(row.scan_run_id, row.evidence_fingerprint, row.decided_at)
        for row in rows
        if row.status == AccountStatus.OK
        and row.evidence_fingerprint is not None
        and row.pruned_at is None
        and row.decided_at >= not_before
    }


def carried_accounts(engine: Engine, run_id: int) -> int:
    """Accounts of run `run_id` recorded so far whose verdicts were carried over."""
    query = select(func.count()).where(
        AccountScan.scan_run_id == run_id, AccountScan.carried_from_run_id.is_not(None)
    )
    with engine.connect() as conn:
        return conn.scalar(query) or 0


def stored_verdicts(engine: Engine, run_id: int, account_id: str) -> list[CheckVerdict]:
    """The verdicts of `account_id` in run `run_id`, without their evidence."""
    query = (
        select(*_VERDICT_COLUMNS)
        .where(CheckResult.scan_run_id == run_id, CheckResult.account_id == account_id)
        .order_by(CheckResult.check_key)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        CheckVerdict(
            account_id=row.account_id,
            region=row.region,
            role_arn=row.role_arn,
            check=row.check,
            resource=row.resource,
            status=CheckStatus(row.status),
            decision=Decision(row.decision) if row.decision else None,
            deciding_layer=Layer(row.deciding_layer) if row.deciding_layer else None,
            policy=row.policy,
            statement=row.statement,
            simulator_decision=(
                Decision(row.simulator_decision) if row.simulator_decision else None
            ),
            simulator_source=row.simulator_source,
            disagreement=row.disagreement,
            message=row.message,
            remediation=row.remediation,
        )
        for row in rows
    ]


_VERDICT_COLUMNS = (
    CheckResult.account_id,
    CheckResult.region,
    CheckResult.role_arn,
    CheckResult.check,
    CheckResult.resource,
    CheckResult.status,
    CheckResult.decision,
    CheckResult.deciding_layer,
    CheckResult.policy,
    CheckResult.statement,
    CheckResult.simulator_decision,
    CheckResult.simulator_source,
    CheckResult.disagreement,
    CheckResult.message,
    CheckResult.remediation,
)
