"""The functions the rest of vaultscan calls to record scans and read results back.

Each function takes an Engine and runs in a transaction of its own. Writes are bulk: the
few account rows go as one executemany per table, check results as one JSON array per
RESULT_BATCH rows expanded server-side; never a statement per result. Reads return plain
dicts (runs: ScanRun rows detached from their session) so callers need no ORM session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    and_,
    delete,
    func,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from scanner.model import AccountOutcome
from scanner.model import CheckResult as CheckVerdict
from scanner.vocabulary import (
    COMPLETE_RUN_STATUSES,
    FINAL_RUN_STATUSES,
    AccountStatus,
    CheckStatus,
    DriftKind,
    RunStatus,
    StateStatus,
)
from storage.db import dumps_json
from storage.drift import apply_run, failing_since_sql
from storage.evidence_store import DocumentSet, expand
from storage.locks import DOCUMENTS_LOCK_KEY, STATE_LOCK_KEY
from storage.models import Account, AccountScan, CheckResult, CheckState, DriftEvent, ScanRun

RESULT_BATCH = 2000  # check results per INSERT statement
FINAL_STATUSES = FINAL_RUN_STATUSES
DRIFT_KINDS = tuple(DriftKind)


class RunStateError(ValueError):
    """The run does not exist or is not in a state that allows the operation."""


@dataclass(frozen=True)
class RunTotals:
    """What a finished run found; `drift` counts the events it wrote, by kind."""

    run_id: int
    status: str
    accounts_total: int
    accounts_scanned: int  # read successfully
    accounts_errored: int
    checks_total: int
    checks_passed: int
    checks_failed: int
    checks_errored: int
    disagreements: int
    drift: dict[str, int] = field(default_factory=dict)


# --- writing ----------------------------------------------------------------------------


def start_run(
    engine: Engine,
    *,
    trigger: str,
    host: str,
    config_fingerprint: str,
    simulator_source: str,
    accounts_total: int,
) -> int:
    """Create a run in status "running" and return its id."""
    stmt = (
        pg_insert(ScanRun)
        .values(
            status=RunStatus.RUNNING,
            trigger=trigger,
            host=host,
            config_fingerprint=config_fingerprint,
            simulator_source=simulator_source,
            accounts_total=accounts_total,
        )
        .returning(ScanRun.id)
    )
    with engine.begin() as conn:
        return int(conn.execute(stmt).scalar_one())


def _account_row(outcome: AccountOutcome, run_id: int) -> dict[str, Any]:
    account = outcome.account
    return {
        "account_id": account.id,
        "name": account.name,
        "email": account.email,
        "status": account.status,
        "ou_path": account.ou_path_ids,
        "ou_path_names": account.ou_path_names,
        "tags": dict(account.tags),
        "first_seen_scan_id": run_id,
        "last_seen_scan_id": run_id,
    }


def _scan_row(outcome: AccountOutcome, run_id: int) -> dict[str, Any]:
    return {
        "scan_run_id": run_id,
        "account_id": outcome.account.id,
        "status": outcome.status,
        "error": outcome.error,
        "api_calls": dict(outcome.api_calls),
        "evidence_fingerprint": outcome.evidence_fingerprint,
        "carried_from_run_id": outcome.carried_from_run,
        "verdicts_decided_at": outcome.decided_at,
    }


def _result_row(result: CheckVerdict, documents: DocumentSet) -> dict[str, Any]:
    evidence = {
        "scenario": result.scenario,
        "explanation": result.explanation,
        "confidence": result.confidence,
    }
    return {
        "check_key": result.key,
        "account_id": result.account_id,
        **result.verdict_fields(),
        "evidence": documents.compact(evidence),
    }


# check_results columns sent by record_outcomes, with their type in the JSON batch.
_RESULT_COLUMNS = {
    "check_key": "text",
    "account_id": "text",
    "region": "text",
    "role_arn": "text",
    "check": "text",
    "resource": "text",
    "status": "text",
    "decision": "text",
    "deciding_layer": "text",
    "policy": "text",
    "statement": "text",
    "simulator_decision": "text",
    "simulator_source": "text",
    "disagreement": "boolean",
    "message": "text",
    "remediation": "jsonb",
    "evidence": "jsonb",
}
_NAMES = ", ".join(f'"{name}"' for name in _RESULT_COLUMNS)
_UPDATED = ", ".join(
    f'"{name}" = EXCLUDED."{name}"' for name in _RESULT_COLUMNS if name != "check_key"
)


def _insert_results(rows: str, alias: str) -> str:
    """INSERT INTO check_results from `rows` (a FROM clause naming one result per row as
    `alias`), failing_since following check_state: shared by fresh and carried verdicts."""
    return f"""
    INSERT INTO check_results (scan_run_id, {_NAMES}, failing_since)
    SELECT :run_id, {", ".join(f'{alias}."{name}"' for name in _RESULT_COLUMNS)},
           {failing_since_sql(alias, "cs")}
    FROM {rows}
    -- LATERAL ... LIMIT 1: one primary-key lookup per result. A plain join lets the
    -- planner, misled by stale statistics mid-scan, hash the whole check_state per call.
    LEFT JOIN LATERAL (
        SELECT s.status, s.failing_since FROM check_state AS s
        WHERE s.check_key = {alias}.check_key AND s.last_scan_run_id < :run_id
        LIMIT 1
    ) AS cs ON true
    ON CONFLICT (scan_run_id, check_key) DO UPDATE SET
        {_UPDATED},
        failing_since = EXCLUDED.failing_since
    """


# The whole batch travels as one JSON array expanded server-side: one statement, one
# round trip, and the upsert and the failing_since lookup happen in the same pass.
_INSERT_RESULTS = text(
    _insert_results(
        "jsonb_to_recordset(CAST(:rows AS jsonb)) AS r("
        + ", ".join(f'"{name}" {kind}' for name, kind in _RESULT_COLUMNS.items())
        + ")",
        "r",
    )
)
# Documents already stored (by an earlier check, account or run) are left as they are.
_INSERT_DOCUMENTS = text(
    """
    INSERT INTO evidence_documents (hash, body)
    SELECT d.hash, d.body FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS d(hash text, body jsonb)
    ON CONFLICT (hash) DO NOTHING
    """
)
# Shared by writers; retention takes it exclusively to remove documents nothing refers to,
# so a document a writer relies on (inserted or found) cannot vanish before it commits.
_SHARE_DOCUMENTS = text("SELECT pg_advisory_xact_lock_shared(:key)")


# An unchanged account's verdicts, copied row for row from its latest read's run
# (evidence included, without it leaving the database).
_CARRY_RESULTS = text(
    _insert_results(
        "jsonb_to_recordset(CAST(:carried AS jsonb)) AS c(account_id text, run_id bigint)"
        " JOIN check_results AS p ON p.scan_run_id = c.run_id AND p.account_id = c.account_id",
        "p",
    )
)


def _excluded(stmt: Any, columns: Iterable[str]) -> dict[str, Any]:
    return {name: stmt.excluded[name] for name in columns}


def record_outcomes(engine: Engine, run_id: int, outcomes: Sequence[AccountOutcome]) -> None:
    """Store finished accounts of a running run: upsert `accounts`, write `account_scans`
    and `check_results`. Call as often as accounts finish (each outcome holds all of its
    account's results); recording an account again within the same run replaces what was
    recorded for it."""
    if not outcomes:
        return
    with engine.begin() as conn:
        write_outcomes(conn, run_id, outcomes)


def write_outcomes(conn: Connection, run_id: int, outcomes: Sequence[AccountOutcome]) -> None:
    """record_outcomes inside the caller's transaction."""
    if not outcomes:
        return
    # Last one wins for repeated ids (a statement may not touch the same row twice); rows go
    # in key order so parallel writers lock shared rows in the same order (no deadlock).
    accounts = _sorted({o.account.id: _account_row(o, run_id) for o in outcomes})
    scans = _sorted({o.account.id: _scan_row(o, run_id) for o in outcomes})
    documents = DocumentSet()
    fresh = [o for o in outcomes if o.carried_from_run is None]
    results = _sorted({r.key: _result_row(r, documents) for o in fresh for r in o.results})
    carried = [
        {"account_id": o.account.id, "run_id": o.carried_from_run}
        for o in sorted(outcomes, key=lambda o: o.account.id)
        if o.carried_from_run is not None
    ]

    account_stmt = pg_insert(Account)
    account_stmt = account_stmt.on_conflict_do_update(
        index_elements=[Account.account_id],
        set_={
            **_excluded(
                account_stmt,
                (
                    "name",
                    "email",
                    "status",
                    "ou_path",
                    "ou_path_names",
                    "tags",
                    "last_seen_scan_id",
                ),
            ),
            "updated_at": func.now(),
        },
    )
    scan_stmt = pg_insert(AccountScan)
    scan_stmt = scan_stmt.on_conflict_do_update(
        index_elements=[AccountScan.scan_run_id, AccountScan.account_id],
        set_=_excluded(
            scan_stmt,
            (
                "status",
                "error",
                "api_calls",
                "evidence_fingerprint",
                "carried_from_run_id",
                "verdicts_decided_at",
            ),
        ),
    )
    account_ids = [row["account_id"] for row in accounts]
    run = _require_running(conn, run_id, exclusive=False)
    recorded_before = conn.scalars(
        select(AccountScan.account_id).where(
            AccountScan.scan_run_id == run_id, AccountScan.account_id.in_(account_ids)
        )
    ).all()
    if recorded_before:
        # An outcome is everything about its account: a retry replaces the earlier
        # rows, including results the retry no longer has.
        conn.execute(
            delete(CheckResult).where(
                CheckResult.account_id.in_(recorded_before),
                CheckResult.scan_run_id == run_id,
            )
        )
    conn.execute(account_stmt, accounts)
    conn.execute(scan_stmt, scans)
    _write_documents(conn, documents)
    # Chunks keep each JSON parameter far below PostgreSQL's 256 MB jsonb limit even
    # with large evidence, while still costing one statement per RESULT_BATCH rows.
    for start in range(0, len(results), RESULT_BATCH):
        conn.execute(
            _INSERT_RESULTS,
            {
                "run_id": run_id,
                "started_at": run.started_at,
                "rows": dumps_json(results[start : start + RESULT_BATCH]),
            },
        )
    if carried:
        # the copies refer to the same evidence documents: hold them as writers do
        conn.execute(_SHARE_DOCUMENTS, {"key": DOCUMENTS_LOCK_KEY})
        conn.execute(
            _CARRY_RESULTS,
            {"run_id": run_id, "started_at": run.started_at, "carried": dumps_json(carried)},
        )


def _write_documents(conn: Connection, documents: DocumentSet) -> None:
    rows = documents.rows()
    if not rows:
        return  # results that refer to no document need no lock
    conn.execute(_SHARE_DOCUMENTS, {"key": DOCUMENTS_LOCK_KEY})
    for start in range(0, len(rows), RESULT_BATCH):
        conn.execute(_INSERT_DOCUMENTS, {"rows": dumps_json(rows[start : start + RESULT_BATCH])})


def _sorted(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [rows[key] for key in sorted(rows)]


def _require_running(conn: Connection, run_id: int, *, exclusive: bool = True) -> Row[Any]:
    # Writers share the row lock (they run in parallel); finish_run takes it exclusively,
    # so it waits for writes in flight and no write lands after the run is closed.
    query = select(ScanRun.status, ScanRun.started_at).where(ScanRun.id == run_id)
    row = conn.execute(query.with_for_update(read=not exclusive)).one_or_none()
    if row is None:
        raise RunStateError(f"scan run {run_id} does not exist")
    if row.status != RunStatus.RUNNING:
        raise RunStateError(f"scan run {run_id} is already finished (status {row.status})")
    return row


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    status: str | None = None,
    error: str | None = None,
    scope: Sequence[Mapping[str, str | None]] | None = None,
) -> RunTotals:
    """Close a running run: count its results, set finished_at and status ("succeeded", or
    "partial" when an account errored, unless `status` says otherwise), update check_state
    and write drift events (see storage.drift for the rules). `scope` marks a partial run
    (event-driven): only keys inside it can become gone."""
    if status is not None and status not in FINAL_STATUSES:
        raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, not {status!r}")
    with engine.begin() as conn:
        # One run at a time moves check_state, so two replicas never interleave drift.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STATE_LOCK_KEY})
        run = _require_running(conn, run_id)
        checks = conn.execute(
            select(
                func.count().label("checks_total"),
                _count_where(CheckResult.status == CheckStatus.PASS, "checks_passed"),
                _count_where(CheckResult.status == CheckStatus.FAIL, "checks_failed"),
                _count_where(CheckResult.status == CheckStatus.ERROR, "checks_errored"),
                func.count().filter(CheckResult.disagreement).label("disagreements"),
            ).where(CheckResult.scan_run_id == run_id)
        ).one()
        accounts = conn.execute(
            select(
                _count_where(AccountScan.status == AccountStatus.OK, "accounts_scanned"),
                _count_where(AccountScan.status == AccountStatus.ERROR, "accounts_errored"),
            ).where(AccountScan.scan_run_id == run_id)
        ).one()
        # the counts as stored in scan_runs and returned in RunTotals
        counts = {**accounts._asdict(), **checks._asdict()}
        final = status or (RunStatus.PARTIAL if accounts.accounts_errored else RunStatus.SUCCEEDED)
        complete = final in COMPLETE_RUN_STATUSES
        drift = apply_run(conn, run_id, run.started_at, complete=complete, scope=scope)
        accounts_total = conn.execute(
            update(ScanRun)
            .where(ScanRun.id == run_id)
            .values(
                finished_at=func.now(),
                status=final,
                error=error,
                accounts_compliant=accounts_compliant(run_id),
                **counts,
            )
            .returning(ScanRun.accounts_total)
        ).scalar_one()
    return RunTotals(
        run_id=run_id, status=final, accounts_total=accounts_total, **counts, drift=drift
    )


def accounts_compliant(run_id: int) -> Any:
    """Accounts the run read with no check other than pass: a scalar subquery."""
    not_passing = (
        select(CheckResult.id)
        .where(
            CheckResult.scan_run_id == run_id,
            CheckResult.account_id == AccountScan.account_id,
            CheckResult.status != CheckStatus.PASS,
        )
        .exists()
    )
    return (
        select(func.count())
        .select_from(AccountScan)
        .where(
            AccountScan.scan_run_id == run_id, AccountScan.status == AccountStatus.OK, ~not_passing
        )
        .scalar_subquery()
    )


def _count_where(condition: Any, label: str) -> Any:
    return func.count().filter(condition).label(label)


def mark_interrupted(engine: Engine, run_id: int, reason: str) -> None:
    """Close a run that stopped before the end (shutdown, or its process died). What it
    recorded still moves check_state, but nothing is declared gone. A run that is already
    finished is left as it is."""
    try:
        finish_run(engine, run_id, status=RunStatus.INTERRUPTED, error=reason)
    except RunStateError:
        with engine.connect() as conn:
            exists = conn.execute(select(ScanRun.id).where(ScanRun.id == run_id)).first()
        if exists is None:
            raise


# --- reading ----------------------------------------------------------------------------


def find_running_runs(engine: Engine) -> list[ScanRun]:
    """Runs still marked running (check storage.locks.lock_is_held to see if one is live)."""
    with Session(engine, expire_on_commit=False) as session:
        return list(
            session.scalars(
                select(ScanRun).where(ScanRun.status == RunStatus.RUNNING).order_by(ScanRun.id)
            )
        )


def latest_run(engine: Engine, *, finished_only: bool = False) -> ScanRun | None:
    stmt = select(ScanRun).order_by(ScanRun.id.desc()).limit(1)
    if finished_only:
        stmt = stmt.where(ScanRun.finished_at.is_not(None))
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(stmt).first()


def select_current(*columns: Any) -> Select[Any]:
    """`columns` of check_state, each key joined to the result it comes from and to its
    account (both outer joins: either may be missing)."""
    return (
        select(*columns)
        .select_from(CheckState)
        .outerjoin(CheckResult, CheckResult.id == CheckState.last_result_id)
        .outerjoin(Account, Account.account_id == CheckState.account_id)
    )


# Which check a row of latest_results or failing_checks is about, in their column order.
_CHECK_COLUMNS = (
    CheckState.check_key,
    CheckState.account_id,
    Account.name.label("account_name"),
    Account.ou_path,
    Account.ou_path_names,
    CheckState.region,
    CheckState.role_arn,
    CheckState.check,
)


def _dicts(engine: Engine, stmt: Select[Any]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(stmt)]


def _role_filter(role: str) -> Any:
    # Accept the ARN or the bare role name a person would type.
    return or_(CheckState.role_arn == role, CheckState.role_arn.like(f"%/{_escape_like(role)}"))


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def latest_results(
    engine: Engine,
    *,
    account_id: str | None = None,
    region: str | None = None,
    status: str | None = None,
    role: str | None = None,
    check: str | None = None,
    include_evidence: bool = True,
) -> list[dict[str, Any]]:
    """The latest verdict of every known check key (gone keys left out), with account name,
    OU path, remediation and evidence of the result it came from.

    `role` matches the role ARN or its name. `status` is the key's current status; when it
    is "error" because the account could not be read, `message` says so and the evidence is
    that of the last result (`result_scan_run_id`, `result_status`). Leave out the evidence
    (`include_evidence=False`) when listing many keys without showing it."""
    stmt = (
        select_current(
            *_CHECK_COLUMNS,
            CheckResult.resource,
            CheckState.status,
            CheckResult.status.label("result_status"),
            CheckResult.decision,
            CheckState.deciding_layer,
            CheckState.policy,
            CheckState.statement,
            CheckResult.simulator_decision,
            CheckResult.simulator_source,
            CheckState.disagreement,
            CheckResult.message,
            CheckResult.remediation,
            (CheckResult.evidence if include_evidence else null()).label("evidence"),
            CheckState.failing_since,
            CheckState.last_changed_at,
            CheckState.last_scan_run_id.label("scan_run_id"),
            CheckResult.scan_run_id.label("result_scan_run_id"),
            AccountScan.error.label("account_error"),
        )
        .outerjoin(
            AccountScan,
            and_(
                AccountScan.scan_run_id == CheckState.last_scan_run_id,
                AccountScan.account_id == CheckState.account_id,
            ),
        )
        .where(CheckState.status != StateStatus.GONE)
        .order_by(CheckState.account_id, CheckState.region, CheckState.role_arn, CheckState.check)
    )
    if account_id is not None:
        stmt = stmt.where(CheckState.account_id == account_id)
    if region is not None:
        stmt = stmt.where(CheckState.region == region)
    if status is not None:
        stmt = stmt.where(CheckState.status == status)
    if role is not None:
        stmt = stmt.where(_role_filter(role))
    if check is not None:
        stmt = stmt.where(CheckState.check == check)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(stmt)]
        if include_evidence:
            expand(conn, rows)
    for row in rows:
        # The account could not be read in the latest run: say so rather than repeat the
        # message of the older result the evidence comes from.
        if row["status"] != row["result_status"] and row["account_error"]:
            row["message"] = f"account could not be read: {row['account_error']}"
    return rows


def drift_events(
    engine: Engine,
    *,
    run_id: int | None = None,
    since: datetime | None = None,
    kinds: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Drift events, oldest first, with account name and OU path."""
    stmt = (
        select(
            DriftEvent.id,
            DriftEvent.scan_run_id,
            DriftEvent.check_key,
            DriftEvent.account_id,
            Account.name.label("account_name"),
            Account.ou_path_names,
            DriftEvent.region,
            DriftEvent.role_arn,
            DriftEvent.check,
            DriftEvent.kind,
            DriftEvent.previous_status,
            DriftEvent.current_status,
            DriftEvent.occurred_at,
        )
        .outerjoin(Account, Account.account_id == DriftEvent.account_id)
        .order_by(DriftEvent.id)
    )
    if run_id is not None:
        stmt = stmt.where(DriftEvent.scan_run_id == run_id)
    if since is not None:
        stmt = stmt.where(DriftEvent.occurred_at >= since)
    if kinds is not None:
        stmt = stmt.where(DriftEvent.kind.in_(list(kinds)))
    return _dicts(engine, stmt)


def failing_checks(engine: Engine) -> list[dict[str, Any]]:
    """Check keys failing now, longest-failing first."""
    stmt = (
        select(
            *_CHECK_COLUMNS,
            CheckState.failing_since,
            CheckState.deciding_layer,
            CheckState.policy,
            CheckState.statement,
            CheckState.disagreement,
            CheckState.last_scan_run_id.label("scan_run_id"),
        )
        .outerjoin(Account, Account.account_id == CheckState.account_id)
        .where(CheckState.status == CheckStatus.FAIL)
        .order_by(CheckState.failing_since, CheckState.check_key)
    )
    return _dicts(engine, stmt)
