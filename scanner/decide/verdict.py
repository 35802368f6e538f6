"""One verdict: the engine's answer to one request of a role, cross-checked with AWS's
simulator, with the message and the minimal fix read from the engine's typed result."""

from __future__ import annotations

from typing import NamedTuple

from scanner.context_gaps import engine_context, keys_the_verdict_rests_on
from scanner.decide.crosscheck import answer_for, iam_side_decision
from scanner.decide.culprit import Culprit, culprit_for
from scanner.decide.messages import (
    absent_keys_suffix,
    allowed_message,
    disagreement_suffix,
    failure_message,
    missing_context_suffix,
    simulator_deny_message,
    unmet_trust_conditions,
)
from scanner.decide.scenarios import OrgPath, scenario_documents, stored_scenario
from scanner.model import Account, CheckId, CheckResult, KeyManager, KmsKey, Role, SimulatorAnswer
from scanner.policy import Decision, Evaluation, Scenario, evaluate
from scanner.remediation import Finding, fix_for
from scanner.request_context import RequestContext


class Asked(NamedTuple):
    """One request of one role, with the scenario that asks it (a tuple: one is built
    for every check, and a frozen dataclass costs several times as much to build)."""

    account: Account
    region: str
    role: Role
    action: str
    resource: str
    check: CheckId
    scenario: Scenario
    scps: OrgPath
    rcps: OrgPath
    key: KmsKey | None = None
    context: RequestContext | None = None  # the whole request context, with its gaps


def decide_request(asked: Asked, answers: list[SimulatorAnswer]) -> CheckResult:
    evaluation = evaluate(asked.scenario)
    decision, layer = evaluation.decision, evaluation.deciding_layer
    iam_side = iam_side_decision(evaluation)
    answer = answer_for(answers, asked.action, asked.resource)
    simulated = answer.decision if answer else None
    missing = answer.missing_context if answer else ()
    # an answer that rests on keys vaultscan did not send is stored, never trusted alone
    disagreement = simulated is not None and simulated != iam_side and not missing
    # a simulator deny counts unless the engine agrees on those layers and the key
    # policy then grants directly (the simulator never sees the key policy)
    simulator_denies = simulated is not None and simulated != Decision.ALLOWED and disagreement
    result = CheckResult(
        account_id=asked.account.id,
        region=asked.region,
        role_arn=asked.role.arn,
        check=str(asked.check),
        resource=asked.resource,
        status="pass",
        decision=decision,
        deciding_layer=layer,
        simulator_decision=simulated,
        simulator_source=answer.source if answer else None,
        disagreement=disagreement,
        scenario=stored_scenario(asked.scenario, decision, layer),
        explanation=evaluation.to_dict(),
        absent_keys=rests_on(asked),
        simulator_missing=tuple(missing),
    )
    if decision == Decision.ALLOWED and not simulator_denies:
        result.message = allowed_message(asked.role, asked.action, asked.resource)
    else:
        _fail(result, asked, evaluation, simulated)
    if asked.key is not None and asked.key.choice:
        result.message += f" Key: {asked.key.choice}"
    if disagreement:
        source = answer.source if answer else "?"
        result.message += disagreement_suffix(source, simulated, iam_side)
    elif missing and simulated != iam_side:
        result.message += missing_context_suffix(simulated, missing)
    if result.absent_keys:
        result.message += absent_keys_suffix(result.absent_keys)
    return result


def rests_on(asked: Asked) -> tuple[str, ...]:
    """Condition keys vaultscan could not know that a deciding statement reads."""
    if asked.context is None:
        return ()
    keys = keys_the_verdict_rests_on(
        scenario_documents(asked.scenario),
        asked.action,
        asked.resource,
        engine_context(asked.context.values),
        representative=asked.context.representative,
        absent_by_rule=asked.context.absent_by_rule,
    )
    return tuple(keys)


def _fail(result: CheckResult, asked: Asked, evaluation: Evaluation, simulated: str | None) -> None:
    """Mark `result` failed, with the culprit, the message and the fix."""
    decision, layer = evaluation.decision, evaluation.deciding_layer
    key = asked.key
    culprit = culprit_for(evaluation, scps=asked.scps, rcps=asked.rcps, role=asked.role, key=key)
    trust = evaluation.account_trust
    result.status = "fail"
    if decision != Decision.ALLOWED:
        result.message = failure_message(
            action=asked.action,
            role=asked.role,
            layer=layer,
            decision=decision,
            culprit=culprit,
            resource=asked.resource,
            trust=trust,
            key=key,
        )
    else:
        result.message = simulator_deny_message(asked.role, asked.action, simulated)
    result.policy = culprit.policy
    result.statement = culprit.statement_label
    result.remediation = fix_for(_finding(asked, evaluation, culprit, simulated))


def _finding(
    asked: Asked, evaluation: Evaluation, culprit: Culprit, simulated: str | None
) -> Finding:
    denied = evaluation.decision != Decision.ALLOWED
    trust = evaluation.account_trust
    key = asked.key
    # the key policy lets IAM policies count: it trusts the account, or the key is in
    # another account, where the role itself must be named (a statement for the role)
    enables_iam = trust is None or trust.trusted or trust.account != asked.account.id
    return Finding(
        account_id=asked.account.id,
        region=asked.region,
        role_arn=asked.role.arn,
        action=asked.action,
        resource=asked.resource,
        layer=evaluation.deciding_layer if denied else None,
        decision=evaluation.decision if denied else simulated,
        policy=culprit.policy,
        policy_id=culprit.policy_id,
        level=culprit.level,
        statement_label=culprit.statement_label,
        statement_doc=culprit.statement_doc,
        key_arn=key.arn if key else None,
        key_policy_enables_iam=enables_iam,
        key_trust_unmet=unmet_trust_conditions(trust),
        key_manager=key.key_manager if key else KeyManager.CUSTOMER,
    )
