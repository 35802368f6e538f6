"""Compare one finished run with the latest state of every check key, write the drift
events and move `check_state` forward. Set-based SQL: a run of 100k results costs a few
statements, not 100k round trips.

Rules (the previous status is check_state's, i.e. the latest known one):
- new:       a key with no state, or whose state is gone, appears in the run;
- regressed: pass -> fail (also error -> fail when the key was passing before the error);
- fixed:     fail -> pass (also error -> pass when the key was failing before the error);
- error:     a key's check errored, or its whole account could not be read, and it was not
             already in error;
- gone:      a known key is missing from a run that read its account (or no longer scans
             that account at all). Only runs that saw the whole organization (succeeded or
             partial) may decide that something is gone; a run with a `scope` (an
             event-driven rescan of some accounts or roles) only for the keys in it.
`failing_since` is the start of the current failing streak: the started_at of the run that
first saw it fail. An error keeps it (the check is not known to be fixed); pass clears it.
Keys whose state already comes from this run or a later one are left alone, so finishing
the same run twice, or an older run after a newer one, changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, TextClause, text

from scanner.vocabulary import AccountStatus, DriftKind, StateStatus


def _literal(word: StrEnum) -> str:
    """A vocabulary word as an SQL string literal (the words are plain lower-case
    identifiers, never input, so they need no escaping)."""
    return f"'{word}'"


# check_results.status (CheckStatus) and check_state.status (StateStatus: the same words
# and gone), account_scans.status, drift_events.kind
PASS = _literal(StateStatus.PASS)
FAIL = _literal(StateStatus.FAIL)
ERROR = _literal(StateStatus.ERROR)
GONE = _literal(StateStatus.GONE)
ACCOUNT_ERROR = _literal(AccountStatus.ERROR)
NEW = _literal(DriftKind.NEW)
REGRESSED = _literal(DriftKind.REGRESSED)
FIXED = _literal(DriftKind.FIXED)
ERROR_EVENT = _literal(DriftKind.ERROR)


def failing_since_sql(result: str, state: str) -> str:
    """SQL for a result's failing_since, given aliases of the result row and of the state
    row it follows (LEFT JOINed on check_key, only when older than the run)."""
    return f"""CASE
        WHEN {result}.status = {PASS} THEN NULL
        WHEN {state}.status IN ({FAIL}, {ERROR}) AND {state}.failing_since IS NOT NULL
            THEN {state}.failing_since
        WHEN {result}.status = {FAIL} THEN CAST(:started_at AS timestamptz)
    END"""


# record_outcomes already set failing_since against the state of the time; the state may
# have moved since (an older run finished late), so correct the rows that differ.
_FAILING_SINCE = text(
    f"""
    UPDATE check_results AS cr
    SET failing_since = v.failing_since
    FROM (SELECT cur.id, {failing_since_sql("cur", "cs")} AS failing_since
          FROM check_results AS cur
          LEFT JOIN check_state AS cs
              ON cs.check_key = cur.check_key AND cs.last_scan_run_id < :run_id
          WHERE cur.scan_run_id = :run_id AND cur.status <> {PASS}) AS v
    WHERE cr.id = v.id AND cr.failing_since IS DISTINCT FROM v.failing_since
    """
)

_INSERT_EVENTS = """
    INSERT INTO drift_events (scan_run_id, check_key, account_id, region, role_arn, "check",
                              kind, previous_status, current_status, occurred_at)
"""

_PRESENT_EVENTS = text(
    f"""{_INSERT_EVENTS}
    SELECT :run_id, cr.check_key, cr.account_id, cr.region, cr.role_arn, cr."check",
           d.kind, cs.status, cr.status, now()
    FROM check_results AS cr
    LEFT JOIN check_state AS cs ON cs.check_key = cr.check_key
    CROSS JOIN LATERAL (SELECT CASE
        WHEN cs.check_key IS NULL OR cs.status = {GONE} THEN {NEW}
        WHEN cr.status = {ERROR} AND cs.status <> {ERROR} THEN {ERROR_EVENT}
        WHEN cr.status = {FAIL} AND (cs.status = {PASS}
             OR (cs.status = {ERROR} AND cs.failing_since IS NULL)) THEN {REGRESSED}
        WHEN cr.status = {PASS} AND (cs.status = {FAIL}
             OR (cs.status = {ERROR} AND cs.failing_since IS NOT NULL)) THEN {FIXED}
    END AS kind) AS d
    WHERE cr.scan_run_id = :run_id AND d.kind IS NOT NULL
      AND (cs.check_key IS NULL OR cs.last_scan_run_id < :run_id)
    """
)

# Known keys this run has no result for.
_MISSING = f"""
    FROM check_state AS cs
    WHERE cs.status <> {GONE} AND cs.last_scan_run_id < :run_id
      AND NOT EXISTS (SELECT 1 FROM check_results AS cr
                      WHERE cr.scan_run_id = :run_id AND cr.check_key = cs.check_key)
"""
_ACCOUNT_ERRORED = f"""
    EXISTS (SELECT 1 FROM account_scans AS a WHERE a.scan_run_id = :run_id
            AND a.account_id = cs.account_id AND a.status = {ACCOUNT_ERROR})
"""


def _missing_events(kind: DriftKind, condition: str) -> TextClause:
    """One `kind` event per missing key that also meets `condition`."""
    return text(
        f"""{_INSERT_EVENTS}
    SELECT :run_id, cs.check_key, cs.account_id, cs.region, cs.role_arn, cs."check",
           {_literal(kind)}, cs.status, {_literal(kind)}, now()
    {_MISSING} AND {condition}
    """
    )


# A key inside the scope of a partial run: its account, and its role when one is named
# (by name: the ARN's last segment, whatever the role's path).
_IN_SCOPE = """
    EXISTS (SELECT 1 FROM jsonb_to_recordset(CAST(:scope AS jsonb)) AS s(account_id text, role text)
            WHERE s.account_id = cs.account_id
              AND (s.role IS NULL OR right(cs.role_arn, length(s.role) + 1) = '/' || s.role))
"""

_ERROR_EVENTS = _missing_events(DriftKind.ERROR, f"cs.status <> {ERROR} AND {_ACCOUNT_ERRORED}")
_GONE_EVENTS = _missing_events(DriftKind.GONE, f"NOT {_ACCOUNT_ERRORED}")
_SCOPED_GONE_EVENTS = _missing_events(DriftKind.GONE, f"NOT {_ACCOUNT_ERRORED} AND {_IN_SCOPE}")

# Keys already known: one set-based UPDATE (much cheaper than ON CONFLICT row by row).
# The key's account, region, role and check are part of the key, so they never change.
_UPDATE_STATE = text(
    """
    UPDATE check_state AS cs
    SET status = cr.status,
        deciding_layer = cr.deciding_layer,
        policy = cr.policy,
        statement = cr.statement,
        disagreement = cr.disagreement,
        last_result_id = cr.id,
        last_scan_run_id = :run_id,
        failing_since = cr.failing_since,
        last_changed_at = CASE WHEN cs.status = cr.status THEN cs.last_changed_at
                               ELSE now() END
    FROM check_results AS cr
    WHERE cr.scan_run_id = :run_id AND cr.check_key = cs.check_key
      AND cs.last_scan_run_id < :run_id
    """
)

_INSERT_STATE = text(
    """
    INSERT INTO check_state (check_key, account_id, region, role_arn, "check", status,
                             deciding_layer, policy, statement, disagreement, last_result_id,
                             last_scan_run_id, failing_since, last_changed_at)
    SELECT cr.check_key, cr.account_id, cr.region, cr.role_arn, cr."check", cr.status,
           cr.deciding_layer, cr.policy, cr.statement, cr.disagreement, cr.id,
           :run_id, cr.failing_since, now()
    FROM check_results AS cr
    WHERE cr.scan_run_id = :run_id
      AND NOT EXISTS (SELECT 1 FROM check_state AS cs WHERE cs.check_key = cr.check_key)
    """
)

# An unreadable account: its checks become error, keeping failing_since and the last
# real result (its evidence is still the best there is).
_ERROR_STATE = text(
    f"""
    UPDATE check_state AS target
    SET status = {ERROR}, last_scan_run_id = :run_id,
        last_changed_at = CASE WHEN target.status = {ERROR} THEN target.last_changed_at
                               ELSE now() END
    WHERE target.check_key IN (SELECT cs.check_key {_MISSING} AND {_ACCOUNT_ERRORED})
    """
)

_GONE_STATE = text(
    f"""
    UPDATE check_state AS target
    SET status = {GONE}, failing_since = NULL, last_scan_run_id = :run_id,
        last_changed_at = now()
    WHERE target.check_key IN (SELECT cs.check_key {_MISSING} AND NOT {_ACCOUNT_ERRORED})
    """
)

_SCOPED_GONE_STATE = text(
    f"""
    UPDATE check_state AS target
    SET status = {GONE}, failing_since = NULL, last_scan_run_id = :run_id,
        last_changed_at = now()
    WHERE target.check_key IN (SELECT cs.check_key {_MISSING}
                               AND NOT {_ACCOUNT_ERRORED} AND {_IN_SCOPE})
    """
)

_COUNT_EVENTS = text(
    "SELECT kind, count(*) FROM drift_events WHERE scan_run_id = :run_id GROUP BY kind"
)

# The running totals the drift counters export: added to here, never recounted from
# drift_events, so retention deleting old events cannot make a counter go down.
_ADD_TOTALS = text(
    """
    INSERT INTO drift_totals (kind, events)
    SELECT kind, count(*) FROM drift_events WHERE scan_run_id = :run_id GROUP BY kind
    ON CONFLICT (kind) DO UPDATE SET events = drift_totals.events + EXCLUDED.events
    """
)


def apply_run(
    conn: Connection,
    run_id: int,
    started_at: datetime,
    *,
    complete: bool,
    scope: Sequence[Mapping[str, str | None]] | None = None,
) -> dict[str, int]:
    """Write drift events for `run_id` and update check_state; return events per kind.

    `complete` is False for failed or interrupted runs: their missing keys prove nothing,
    so no key is declared gone. `scope` ({"account_id", "role"} items, role None for the
    whole account) limits "gone" to the keys a partial run covered; an empty scope
    declares nothing gone. Call inside the transaction that finishes the run."""
    params: dict[str, object] = {"run_id": run_id, "started_at": started_at}
    gone_events, gone_state = _GONE_EVENTS, _GONE_STATE
    if scope is not None:
        complete = complete and bool(scope)
        params["scope"] = json.dumps([dict(item) for item in scope])
        gone_events, gone_state = _SCOPED_GONE_EVENTS, _SCOPED_GONE_STATE
    conn.execute(_FAILING_SINCE, params)
    # Events first: they compare against the state as it was before this run.
    conn.execute(_PRESENT_EVENTS, params)
    conn.execute(_ERROR_EVENTS, params)
    if complete:
        conn.execute(gone_events, params)
    conn.execute(_UPDATE_STATE, params)
    conn.execute(_INSERT_STATE, params)
    conn.execute(_ERROR_STATE, params)
    if complete:
        conn.execute(gone_state, params)
    conn.execute(_ADD_TOTALS, params)
    return {kind: count for kind, count in conn.execute(_COUNT_EVENTS, params).all()}
