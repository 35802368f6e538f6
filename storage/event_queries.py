"""What event-driven rescans ask the database: which accounts a change reaches, and the
stored verdicts (with their scenarios) that an SCP/RCP change is re-decided from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, text

from scanner.vocabulary import StateStatus
from storage.evidence_store import expand

# Accounts with a current check on the key: its owner's checks and every cross-account
# consumer's. A key is named by ARN or id in `resource` of its checks.
_ACCOUNTS_USING_KEY = text(
    f"""
    SELECT DISTINCT cs.account_id
    FROM check_state AS cs
    JOIN check_results AS cr ON cr.id = cs.last_result_id
    WHERE cs.status <> '{StateStatus.GONE.value}'
      AND (cr.resource = :key OR right(cr.resource, length(:suffix)) = :suffix)
    ORDER BY cs.account_id
    """
)

# Accounts at or below a target: the account itself, or an OU/root on its path.
_ACCOUNTS_BELOW = text(
    """
    SELECT account_id FROM accounts
    WHERE account_id = :target OR position('/' || :target || '/' IN '/' || ou_path || '/') > 0
    ORDER BY account_id
    """
)

_VERDICTS = f"""
    SELECT cs.check_key, cs.account_id, cs.region, cs.role_arn, cs."check",
           cr.resource, cr.status, cr.decision, cr.deciding_layer, cr.policy, cr.statement,
           cr.simulator_decision, cr.simulator_source, cr.disagreement, cr.message,
           cr.remediation, cr.evidence,
           a.name AS account_name, a.email AS account_email, a.status AS account_status,
           a.ou_path, a.ou_path_names
    FROM check_state AS cs
    JOIN check_results AS cr ON cr.id = cs.last_result_id
    LEFT JOIN accounts AS a ON a.account_id = cs.account_id
    WHERE cs.status <> '{StateStatus.GONE.value}'
      AND jsonb_typeof(cr.evidence -> 'scenario') = 'object'
"""
_VERDICTS_OF_ACCOUNTS = text(_VERDICTS + " AND cs.account_id = ANY(:accounts) ORDER BY 1")
# A policy is named "<policy id> (<name>) at <level>" in the scenario's policy_names.
_VERDICTS_WITH_POLICY = text(
    _VERDICTS
    + """ AND position(:needle IN CAST(cr.evidence -> 'scenario' -> 'policy_names' AS text)) > 0
    ORDER BY 1"""
)


def accounts_using_key(engine: Engine, key: str) -> list[str]:
    """Accounts whose current checks use `key` (a key ARN or key id)."""
    key_id = key.rsplit("/", 1)[-1] if key.startswith("arn:") else key
    with engine.connect() as conn:
        rows = conn.execute(_ACCOUNTS_USING_KEY, {"key": key, "suffix": f":key/{key_id}"})
        return [row[0] for row in rows]


def accounts_below(engine: Engine, target_id: str) -> list[str]:
    """Known accounts at or below a root, OU or account id."""
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(_ACCOUNTS_BELOW, {"target": target_id})]


def stored_verdicts(
    engine: Engine, *, accounts: Iterable[str] | None = None, policy_id: str | None = None
) -> list[dict[str, Any]]:
    """The current verdict of every check with a stored scenario, of `accounts` or of
    every account whose scenarios contain the SCP/RCP `policy_id`."""
    with engine.connect() as conn:
        if policy_id is not None:
            rows = conn.execute(_VERDICTS_WITH_POLICY, {"needle": f'"{policy_id} ('})
        else:
            rows = conn.execute(_VERDICTS_OF_ACCOUNTS, {"accounts": sorted(set(accounts or ()))})
        verdicts = [dict(row._mapping) for row in rows]
        expand(conn, verdicts)
        return verdicts
