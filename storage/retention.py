"""Retention: remove the per-check evidence of old runs, in small batches.

What goes: for every finished run that started before the cut-off, its `check_results`
rows and its `account_scans` rows, and `drift_events` older than the cut-off. What stays:

- every `scan_runs` row (one per scan, with its counts: the report's daily trend and the
  scan counters read them), marked `pruned_at`;
- the latest state (`check_state`) and the result row each key points at (its evidence,
  remediation and `failing_since`), whatever its age;
- for a check failing now, the result of the run where its failing streak began (the
  evidence of the change that broke it);
- the newest complete run, entirely, even when it is older than the cut-off;
- the drift totals (`drift_totals`): counters are stored totals, not counts of rows, so
  they never go down.

Policy documents (`evidence_documents`) no remaining result refers to go last, in one
transaction that holds the documents lock exclusively (writers share it), so a document a
scan is recording against is never removed under it.

Each batch is one short transaction of at most `batch_size` rows (a lock timeout keeps it
from queueing behind anything), so a scan recording or finishing at the same time is
never blocked for long: it only writes rows of its own run, which pruning never touches.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from scanner.vocabulary import COMPLETE_RUN_STATUSES, RunStatus
from storage.locks import DOCUMENTS_LOCK_KEY

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5_000
LOCK_TIMEOUT_MS = 5_000  # a batch waits at most this long for a row lock, then fails
STATEMENT_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class PruneResult:
    cutoff: datetime
    runs: int  # runs whose evidence was removed by this call
    check_results: int
    account_scans: int
    drift_events: int
    batches: int
    seconds: float
    evidence_documents: int = 0

    @property
    def rows(self) -> int:
        return self.check_results + self.account_scans + self.drift_events


# Finished runs older than the cut-off, not yet pruned, except the newest complete run.
_PRUNABLE_RUNS = text(
    f"""
    SELECT id, started_at FROM scan_runs
    WHERE started_at < :cutoff AND finished_at IS NOT NULL
      AND status <> '{RunStatus.RUNNING.value}' AND pruned_at IS NULL
      AND id IS DISTINCT FROM (
          SELECT id FROM scan_runs WHERE status = ANY(:complete) AND finished_at IS NOT NULL
          ORDER BY finished_at DESC, id DESC LIMIT 1)
    ORDER BY id
    """
)

# A run's results, except the ones the latest state points at and, for a key failing now,
# the first result of its current failing streak (failing_since is that run's start).
_DELETE_RESULTS = text(
    """
    DELETE FROM check_results WHERE id IN (
        SELECT cr.id FROM check_results AS cr
        WHERE cr.scan_run_id = :run_id
          AND NOT EXISTS (SELECT 1 FROM check_state AS cs WHERE cs.last_result_id = cr.id)
          AND NOT (cr.failing_since IS NOT NULL AND cr.failing_since = :run_started
                   AND EXISTS (SELECT 1 FROM check_state AS cs
                               WHERE cs.check_key = cr.check_key
                                 AND cs.failing_since = cr.failing_since))
        LIMIT :batch)
    """
)

# A run's account reads, except those the latest state of the account still comes from
# (`vaultscan results` shows their error for an account that could not be read).
_DELETE_ACCOUNT_SCANS = text(
    """
    DELETE FROM account_scans WHERE id IN (
        SELECT a.id FROM account_scans AS a
        WHERE a.scan_run_id = :run_id
          AND NOT EXISTS (SELECT 1 FROM check_state AS cs
                          WHERE cs.account_id = a.account_id
                            AND cs.last_scan_run_id = a.scan_run_id)
        LIMIT :batch)
    """
)

_DELETE_DRIFT = text(
    """
    DELETE FROM drift_events WHERE id IN (
        SELECT id FROM drift_events WHERE occurred_at < :cutoff ORDER BY id LIMIT :batch)
    """
)

# One pass over the results' hash lists, then an anti-join: no index on the references needed.
_DELETE_UNUSED_DOCUMENTS = text(
    """
    WITH used AS MATERIALIZED (
        SELECT DISTINCT jsonb_array_elements_text(evidence -> 'documents') AS hash
        FROM check_results WHERE evidence ? 'documents')
    DELETE FROM evidence_documents AS d
    WHERE NOT EXISTS (SELECT 1 FROM used WHERE used.hash = d.hash)
    """
)

_MARK_PRUNED = text("UPDATE scan_runs SET pruned_at = now() WHERE id = :run_id")


def cutoff_for(keep_days: int, now: datetime | None = None) -> datetime:
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, not {keep_days}")
    return (now or datetime.now(UTC)) - timedelta(days=keep_days)


def prune(
    engine: Engine,
    *,
    keep_days: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> PruneResult:
    """Remove the evidence of runs that started more than `keep_days` days ago (see the
    module docstring for what is kept). Safe to run while a scan is recording; `stop`
    ends it between two batches (what was removed stays removed, the rest waits)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    cutoff = cutoff_for(keep_days, now)
    started = time.perf_counter()
    counter = _Counter(engine, batch_size, stop)
    with engine.connect() as conn:
        runs = conn.execute(
            _PRUNABLE_RUNS, {"cutoff": cutoff, "complete": list(COMPLETE_RUN_STATUSES)}
        ).all()
    pruned_runs = 0
    results = scans = 0
    for run_id, run_started in runs:
        params = {"run_id": run_id, "run_started": run_started}
        results += counter.drain(_DELETE_RESULTS, params)
        scans += counter.drain(_DELETE_ACCOUNT_SCANS, params)
        if counter.stopped:
            break
        with engine.begin() as conn:
            conn.execute(_MARK_PRUNED, {"run_id": run_id})
        pruned_runs += 1
    events = 0 if counter.stopped else counter.drain(_DELETE_DRIFT, {"cutoff": cutoff})
    documents = 0 if counter.stopped or not results else _delete_unused_documents(engine)
    result = PruneResult(
        cutoff=cutoff,
        runs=pruned_runs,
        check_results=results,
        account_scans=scans,
        drift_events=events,
        batches=counter.batches,
        seconds=time.perf_counter() - started,
        evidence_documents=documents,
    )
    log.info(
        "pruned runs=%s check_results=%s account_scans=%s drift_events=%s "
        "evidence_documents=%s batches=%s seconds=%.1f cutoff=%s",
        result.runs,
        result.check_results,
        result.account_scans,
        result.drift_events,
        result.evidence_documents,
        result.batches,
        result.seconds,
        cutoff.isoformat(),
    )
    return result


def _delete_unused_documents(engine: Engine) -> int:
    with engine.begin() as conn:
        _limit_waiting(conn)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DOCUMENTS_LOCK_KEY})
        return conn.execute(_DELETE_UNUSED_DOCUMENTS).rowcount


class _Counter:
    """Runs one DELETE … LIMIT batch per transaction until nothing is left."""

    def __init__(self, engine: Engine, batch_size: int, stop: threading.Event | None) -> None:
        self._engine = engine
        self._batch = batch_size
        self._stop = stop
        self.batches = 0

    @property
    def stopped(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def drain(self, statement: object, params: dict[str, object]) -> int:
        deleted = 0
        while not self.stopped:
            with self._engine.begin() as conn:
                _limit_waiting(conn)
                count = conn.execute(statement, {**params, "batch": self._batch}).rowcount  # type: ignore[arg-type]
            self.batches += 1
            deleted += count
            if count < self._batch:
                break
        return deleted


def _limit_waiting(conn: Connection) -> None:
    conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
    conn.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))


_SIZES = text(
    """
    SELECT c.relname, c.reltuples, pg_total_relation_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(:tables)
    ORDER BY c.relname
    """
)
TABLES = (
    "scan_runs",
    "accounts",
    "account_scans",
    "check_results",
    "check_state",
    "drift_events",
    "drift_totals",
    "evidence_documents",
)


def table_rows(engine: Engine) -> dict[str, int]:
    """Exact row count of every vaultscan table (a full count: for tests and `db stats`)."""
    with engine.connect() as conn:
        return {
            table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in TABLES
        }


def table_bytes(engine: Engine) -> dict[str, int]:
    """On-disk size of every vaultscan table with its indexes and TOAST."""
    with engine.connect() as conn:
        return {
            name: int(size) for name, _rows, size in conn.execute(_SIZES, {"tables": list(TABLES)})
        }
