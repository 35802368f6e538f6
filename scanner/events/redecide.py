"""Re-decide stored verdicts after an SCP or RCP change, without reading member accounts.

Every stored result keeps the scenario it was decided from (spec/authz-scenario.md): the
request and every policy of every layer, the SCP/RCP levels root first and the account
last, with their names in `policy_names`. A changed policy's content, or a target's new
list of attached policies, is written into those scenarios and the engine evaluates them
again (`Scenario.from_dict` + `evaluate`). Only layers outside AWS Organizations need the
account itself: a verdict whose deciding layer moves to one of those is handed back for
a real rescan instead of being guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scanner.model import Account, AccountOutcome, CheckResult, Fix, NamedPolicy, OrgUnit
from scanner.policy import Scenario, evaluate
from scanner.policy.arn import role_name

ALLOWED = "allowed"
ORG_LAYERS = {"scps": "scp", "rcps": "rcp"}
LAYER_WORDS = {"scp": "SCP", "rcp": "RCP"}


@dataclass
class OrgChange:
    """What changed in AWS Organizations, as read from the management account."""

    # policy id -> its new content (UpdatePolicy)
    contents: dict[str, NamedPolicy] = field(default_factory=dict)
    # target id -> "scps"/"rcps" -> the policies now attached there (Attach/DetachPolicy)
    attachments: dict[str, dict[str, list[NamedPolicy]]] = field(default_factory=dict)
    note: str = "an AWS Organizations policy change"


@dataclass
class Redecided:
    outcomes: list[AccountOutcome]
    needs_rescan: set[str]  # accounts whose new verdict depends on a layer not stored
    checks: int = 0


def redecide(rows: Iterable[dict[str, Any]], change: OrgChange) -> Redecided:
    """New verdicts for stored verdict rows (storage.event_queries.stored_verdicts)."""
    by_account: dict[str, AccountOutcome] = {}
    needs_rescan: set[str] = set()
    checks = 0
    interned: dict[str, Any] = {}
    for row in rows:
        account_id = row["account_id"]
        if account_id in needs_rescan:
            continue
        scenario = _rewritten(row, change, interned)
        if scenario is None:
            continue  # the change does not touch this check
        result = _verdict(row, scenario, change.note)
        if result is None:
            needs_rescan.add(account_id)
            by_account.pop(account_id, None)
            continue
        outcome = by_account.setdefault(account_id, AccountOutcome(_account(row), "ok"))
        outcome.results.append(result)
        checks += 1
    return Redecided(list(by_account.values()), needs_rescan, checks)


# --- scenarios -------------------------------------------------------------------------


def _targets(row: dict[str, Any]) -> list[str]:
    """The target id of each SCP/RCP level: root, OUs, the account itself."""
    path = [part for part in (row.get("ou_path") or "").split("/") if part]
    return [*path, row["account_id"]]


def _label(row: dict[str, Any], number: int) -> str:
    """A level's name as scanner.decide names it: root, "OU <name>", "account <id> (<name>)"."""
    targets = _targets(row)
    if number == len(targets) - 1:
        name = row.get("account_name") or ""
        return f"account {row['account_id']}" + (f" ({name})" if name else "")
    if targets[number].startswith("r-"):
        return "root"
    names = (row.get("ou_path_names") or "").split("/")
    return f"OU {names[number] if number < len(names) else targets[number]}"


def _rewritten(
    row: dict[str, Any], change: OrgChange, interned: dict[str, Any]
) -> dict[str, Any] | None:
    """The stored scenario with the change applied, or None when it is not affected.

    The stored documents are shared, not copied (only the lists holding them are new),
    and equal documents become one object: the engine compiles a document once per
    object, and one SCP over thousands of accounts arrives as thousands of equal copies."""
    stored = row["evidence"]["scenario"]
    scenario = {**stored, "policies": _interned_policies(stored["policies"], interned)}
    scenario["policy_names"] = {
        key: [list(level) for level in value] if key in ORG_LAYERS else value
        for key, value in (stored.get("policy_names") or {}).items()
    }
    policies, names = scenario["policies"], scenario["policy_names"]
    targets = _targets(row)
    touched = False
    for key in ORG_LAYERS:
        levels = policies.get(key) or []
        if not levels:
            continue  # the policy type is not enabled, or the account is the management one
        level_names = names.setdefault(key, [[] for _ in levels])
        for number, target in enumerate(targets[: len(levels)]):
            label = _label(row, number)
            attached = change.attachments.get(target, {}).get(key)
            if attached is not None:
                levels[number] = [policy.document for policy in attached]
                level_names[number] = [f"{policy.name} at {label}" for policy in attached]
                touched = True
                continue
            for index, name in enumerate(level_names[number]):
                policy_id = name.split(" ", 1)[0]
                if policy_id in change.contents:
                    updated = change.contents[policy_id]
                    levels[number][index] = updated.document
                    level_names[number][index] = f"{updated.name} at {label}"
                    touched = True
    return scenario if touched else None


def _interned_policies(policies: dict[str, Any], interned: dict[str, Any]) -> dict[str, Any]:
    def one(document: Any) -> Any:
        if not isinstance(document, dict):
            return document
        return interned.setdefault(json.dumps(document, sort_keys=True), document)

    out = dict(policies)
    for key in ORG_LAYERS:
        out[key] = [[one(doc) for doc in level] for level in policies.get(key) or []]
    out["identity"] = [one(doc) for doc in policies.get("identity") or []]
    for key in ("permissions_boundary", "resource_policy"):
        out[key] = one(policies.get(key))
    return out


def _evaluate(scenario: dict[str, Any]) -> Any:
    return evaluate(Scenario.from_dict(scenario))


# --- verdicts --------------------------------------------------------------------------


def _verdict(row: dict[str, Any], scenario: dict[str, Any], note: str) -> CheckResult | None:
    evaluation = _evaluate(scenario)
    decision, layer = evaluation.decision, evaluation.deciding_layer
    scenario["expected"], scenario["deciding_layer"] = decision, layer
    request = scenario["request"]
    action, resource = request["action"], request["resource"]
    role = role_name(row["role_arn"])
    result = CheckResult(
        account_id=row["account_id"],
        region=row["region"],
        role_arn=row["role_arn"],
        check=row["check"],
        resource=row["resource"],
        status="pass",
        decision=decision,
        deciding_layer=layer,
        # the simulator's answer predates the change: it is not asked again
        scenario=scenario,
        explanation=evaluation.to_dict(),
    )
    target = "" if resource == "*" else f" on {resource}"
    if decision == ALLOWED:
        result.message = f"Role {role} may perform {action}{target} (re-decided after {note})."
        return result
    result.status = "fail"
    if layer in LAYER_WORDS:
        policy, statement, message = _org_failure(evaluation, scenario, layer, action, role)
        result.policy, result.statement = policy, statement
        result.message = f"{message}{target} (re-decided after {note})."
        result.remediation = Fix(
            kind=f"{layer}-change",
            target=policy,
            summary=f"Change or detach the {LAYER_WORDS[layer]} that denies {action}.",
        )
        return result
    if row["status"] == "fail" and row["decision"] == decision and row["deciding_layer"] == layer:
        # the same layer outside Organizations still decides: the stored finding stands
        result.policy, result.statement = row["policy"], row["statement"]
        result.message, result.remediation = row["message"], row["remediation"]
        return result
    return None  # a layer the stored evidence cannot settle: collect the account


def _org_failure(
    evaluation: Any, scenario: dict[str, Any], layer: str, action: str, role: str
) -> tuple[str | None, str | None, str]:
    words = LAYER_WORDS[layer]
    result = next((item for item in evaluation.layers if item.layer == layer), None)
    denies = [ref for ref in (result.statements if result else []) if ref.effect == "Deny"]
    if evaluation.decision == "explicitDeny" and denies:
        ref = denies[0]
        statement = ref.sid or f"#{ref.index}"
        return (
            ref.policy,
            statement,
            f"{words} {ref.policy}, statement {statement}, denies {action} to role {role}",
        )
    key = "scps" if layer == "scp" else "rcps"
    failing = result.failing_levels() if result is not None else []
    if failing:
        # the engine's per-level result: the first level where nothing allows
        number = failing[0].index
        names = scenario.get("policy_names", {}).get(key, [])
        level_names = names[number] if number < len(names) else []
        attached = ", ".join(level_names) or "nothing"
        return (
            level_names[0] if len(level_names) == 1 else None,
            None,
            f"No {words} allows {action} at level {number} (attached there: {attached}); "
            "every level of the organization path must allow it",
        )
    return None, None, f"{words}s deny {action} to role {role}"


def _account(row: dict[str, Any]) -> Account:
    ids = [part for part in (row.get("ou_path") or "").split("/") if part]
    names = (row.get("ou_path_names") or "").split("/")
    path = tuple(
        OrgUnit(unit, names[number] if number < len(names) else unit)
        for number, unit in enumerate(ids)
    )
    return Account(
        id=row["account_id"],
        name=row.get("account_name") or "",
        email=row.get("account_email") or "",
        status=row.get("account_status") or "ACTIVE",
        ou_path=path,
    )
