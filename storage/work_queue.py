"""The accounts of a shared scan as a work queue in PostgreSQL, the only coordinator
between replicas.

- enqueue: the replica that starts the scan lists its accounts (and stores the
  organization it discovered and, for an incremental scan, how old carried verdicts may
  be: what the replicas that join cannot know on their own).
- claim: a replica takes up to N accounts that are pending, or claimed by a replica whose
  lease ran out (it died), with SELECT ... FOR UPDATE SKIP LOCKED, so replicas never wait
  for each other's claims nor take the same account.
- renew: while it scans, a replica pushes its leases forward.
- record_claimed: the verdicts of claimed accounts are written and the accounts marked done
  in one transaction, only for accounts this replica still holds: an account taken over
  after a lost lease is recorded by exactly one replica.
https://www.postgresql.org/docs/current/sql-select.html#SQL-FOR-UPDATE-SHARE
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from storage.models import ScanRun, ScanWork, SharedScan
from storage.repository import write_outcomes

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scanner.model import AccountOutcome

_CLAIM = text(
    """
    WITH picked AS (
        SELECT w.scan_run_id, w.account_id
        FROM scan_work w JOIN scan_runs r ON r.id = w.scan_run_id
        WHERE r.status = 'running'
          AND w.scan_run_id = :run_id
          AND (w.state = 'pending' OR (w.state = 'claimed' AND w.lease_until < now()))
        ORDER BY w.account_id
        LIMIT :limit
        FOR UPDATE OF w SKIP LOCKED
    )
    UPDATE scan_work w
    SET state = 'claimed', claimed_by = :host,
        lease_until = now() + make_interval(secs => :lease), claims = w.claims + 1
    FROM picked
    WHERE w.scan_run_id = picked.scan_run_id AND w.account_id = picked.account_id
    RETURNING w.account_id
    """
)


@dataclass(frozen=True)
class SharedPlan:
    """What the starting replica stored for the replicas that join its scan."""

    organization: dict[str, Any]  # scanner.org_snapshot.to_json
    # an incremental scan: carry verdicts decided at or after this (None: a full scan)
    incremental_since: datetime | None


def enqueue(engine: Engine, run_id: int, account_ids: Sequence[str], plan: SharedPlan) -> None:
    rows = [{"scan_run_id": run_id, "account_id": account} for account in account_ids]
    with engine.begin() as conn:
        conn.execute(
            pg_insert(SharedScan).values(
                scan_run_id=run_id,
                organization=plan.organization,
                incremental_since=plan.incremental_since,
            )
        )
        for start in range(0, len(rows), 5000):
            conn.execute(
                pg_insert(ScanWork).values(state="pending", claims=0).on_conflict_do_nothing(),
                rows[start : start + 5000],
            )


def claim(engine: Engine, run_id: int, host: str, limit: int, lease_seconds: float) -> list[str]:
    """Up to `limit` accounts of the run for `host`, leased for `lease_seconds`."""
    with engine.begin() as conn:
        found = conn.execute(
            _CLAIM, {"run_id": run_id, "host": host, "limit": limit, "lease": lease_seconds}
        )
        return sorted(row[0] for row in found)


def renew(
    engine: Engine, run_id: int, host: str, account_ids: Sequence[str], lease_seconds: float
) -> int:
    """Push the leases `host` still holds forward; returns how many it still holds."""
    if not account_ids:
        return 0
    with engine.begin() as conn:
        result = conn.execute(
            update(ScanWork)
            .where(
                ScanWork.scan_run_id == run_id,
                ScanWork.account_id.in_(list(account_ids)),
                ScanWork.claimed_by == host,
                ScanWork.state == "claimed",
            )
            .values(lease_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds))
        )
        return result.rowcount


def record_claimed(
    engine: Engine, run_id: int, host: str, outcomes: Sequence[AccountOutcome]
) -> list[str]:
    """Mark the accounts `host` still holds done and record their outcomes, in one
    transaction; returns the accounts recorded (an account whose lease was lost and taken
    over is left to the replica that took it)."""
    if not outcomes:
        return []
    ids = sorted({outcome.account.id for outcome in outcomes})
    with engine.begin() as conn:
        held = set(
            conn.scalars(
                update(ScanWork)
                .where(
                    ScanWork.scan_run_id == run_id,
                    ScanWork.account_id.in_(ids),
                    ScanWork.claimed_by == host,
                    ScanWork.state == "claimed",
                )
                .values(state="done", lease_until=None)
                .returning(ScanWork.account_id)
            )
        )
        write_outcomes(conn, run_id, [o for o in outcomes if o.account.id in held])
    return sorted(held)


def remaining(engine: Engine, run_id: int) -> int:
    """Accounts of the run not done yet (pending or claimed)."""
    with engine.connect() as conn:
        return (
            conn.scalar(
                select(func.count()).where(ScanWork.scan_run_id == run_id, ScanWork.state != "done")
            )
            or 0
        )


def open_shared_runs(engine: Engine) -> list[int]:
    """Running shared scans with accounts nobody holds (pending or lease run out)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ScanWork.scan_run_id)
            .join(ScanRun, ScanRun.id == ScanWork.scan_run_id)
            .where(
                ScanRun.status == "running",
                (ScanWork.state == "pending")
                | ((ScanWork.state == "claimed") & (ScanWork.lease_until < func.now())),
            )
            .distinct()
            .order_by(ScanWork.scan_run_id)
        )
        return [row[0] for row in rows]


def shared_plan(engine: Engine, run_id: int) -> SharedPlan | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(SharedScan.organization, SharedScan.incremental_since).where(
                SharedScan.scan_run_id == run_id
            )
        ).first()
    return None if row is None else SharedPlan(row.organization, row.incremental_since)


def work_counts(engine: Engine, run_id: int) -> dict[str, Any]:
    """Per replica: accounts done, and accounts claimed more than once (taken over)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ScanWork.claimed_by, func.count(), func.sum(ScanWork.claims - 1))
            .where(ScanWork.scan_run_id == run_id, ScanWork.state == "done")
            .group_by(ScanWork.claimed_by)
        )
        return {host: {"done": done, "taken_over": int(over or 0)} for host, done, over in rows}
