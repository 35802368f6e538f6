"""decide: one verdict per (role, region, required action[, key]) of an account.

Pure: works on the dataclasses of scanner.model, never calls AWS or the database.
Every verdict carries the scenario it was decided from (replayable with
`vaultscan explain`), the engine's layer-by-layer explanation, a one-sentence message
and the minimal fix. The IAM policy simulator's answer is compared with the engine's
decision over the layers the simulator sees; a mismatch is stored, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.context_gaps import engine_context, keys_the_verdict_rests_on
from scanner.model import (
    LAYER_WORDS,
    Account,
    AccountCollection,
    CheckResult,
    KmsKey,
    NamedPolicy,
    Organization,
    PolicyDocument,
    Role,
    SimulatorAnswer,
)
from scanner.policy.wildcard import glob_match
from scanner.profiles import Profile, Requirement
from scanner.remediation import Finding, fix_for, key_state_fix
from scanner.request_context import RequestContext, question_for

KEY_STATE_CHECK = "kms:KeyState"
ROLE_PRESENT_CHECK = "iam:DesignatedRole"
GLOBAL_REGION = "global"
ALLOWED = "allowed"
ALLOW_ALL: PolicyDocument = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


# --- scenario -------------------------------------------------------------------------


def level_labels(account: Account) -> list[str]:
    """Names of the SCP/RCP levels of an account: root, each OU, the account itself."""
    labels = []
    for unit in account.ou_path:
        labels.append("root" if unit.id.startswith("r-") else f"OU {unit.name}")
    labels.append(f"account {account.id}" + (f" ({account.name})" if account.name else ""))
    return labels


def org_policy_name(policy: NamedPolicy, level: str) -> str:
    """An SCP or RCP as explanations name it. The same policy is usually attached at
    several levels (FullAWSAccess at each), so the name says which one."""
    return f"{policy.name} at {level}"


def _org_policy_names(levels: list[list[NamedPolicy]], labels: list[str]) -> list[list[str]]:
    return [
        [org_policy_name(policy, label) for policy in level]
        for level, label in zip(levels, labels, strict=False)
    ]


def key_policy_name(key_arn: str) -> str:
    return f"key policy of {key_arn}"


def build_scenario(
    *,
    role: Role,
    account: Account,
    action: str,
    resource: str,
    context: dict[str, Any],
    scps: list[list[NamedPolicy]],
    rcps: list[list[NamedPolicy]],
    key: KmsKey | None = None,
    name: str = "",
    rcp_labels: list[str] | None = None,
) -> dict[str, Any]:
    """The scenario (spec/authz-scenario.md) for one request, with every policy named.
    `rcps` are those of the resource's owner (a key in another account: that account's),
    named after `rcp_labels` (default: the role's account levels)."""
    request: dict[str, Any] = {
        "principal_arn": role.arn,
        "principal_account": account.id,
        "action": action,
        "resource": resource,
        "context": context,
    }
    if resource != "*":
        owner = key.owner_account if key is not None and resource == key.arn else None
        request["resource_account"] = owner or account.id
    boundary = role.permissions_boundary
    identity = role.identity_policies
    resource_policy = key.key_policy if key is not None else None
    labels = level_labels(account)
    return {
        "name": name or f"{account.id} {role.name} {action} {resource}",
        "source": f"vaultscan scan of account {account.id}",
        "request": request,
        "policies": {
            "scps": [[policy.document for policy in level] for level in scps],
            "rcps": [[policy.document for policy in level] for level in rcps],
            "permissions_boundary": boundary.document if boundary else None,
            "identity": [policy.document for policy in identity],
            "resource_policy": resource_policy,
        },
        "policy_names": {
            "scps": _org_policy_names(scps, labels),
            "rcps": _org_policy_names(rcps, rcp_labels or labels),
            "permissions_boundary": boundary.name if boundary else None,
            "identity": [policy.name for policy in identity],
            "resource_policy": key_policy_name(key.arn) if resource_policy is not None else None,
        },
    }


def evaluate_scenario(scenario: dict[str, Any]) -> Any:
    from scanner.policy import Scenario, evaluate

    return evaluate(Scenario.from_dict(scenario))


def iam_side_decision(evaluation: Any) -> str:
    """The engine's decision over the layers AWS's simulator evaluates for a role:
    identity policies, permissions boundary and SCPs (not RCPs, not the key policy)."""
    layers = {layer.layer: layer for layer in evaluation.layers}
    names = ("scp", "permissions_boundary", "identity")
    if any(name in layers and layers[name].decision == "explicitDeny" for name in names):
        return "explicitDeny"
    if any(name in layers and layers[name].decision != ALLOWED for name in names):
        return "implicitDeny"
    return ALLOWED if "identity" in layers else "implicitDeny"


# --- locating the deciding policy -----------------------------------------------------


@dataclass(frozen=True)
class Culprit:
    policy: str | None = None
    policy_id: str | None = None
    level: str | None = None
    statement_label: str | None = None
    statement_doc: dict[str, Any] | None = None


def _statements(document: PolicyDocument | None) -> list[dict[str, Any]]:
    if not document:
        return []
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _statement_label(sid: str | None, index: int) -> str:
    return sid if sid else f"#{index}"


def _policy_id(name: str) -> str:
    """'p-abc123 (DenyBackup)' -> 'p-abc123'; ARNs and other names stay as they are."""
    return name.split(" ", 1)[0] if name.startswith("p-") else name


def _find_denier(evaluation: Any, layer: str, candidates: dict[str, PolicyDocument]) -> Culprit:
    result = next((item for item in evaluation.layers if item.layer == layer), None)
    refs = [ref for ref in (result.statements if result else []) if ref.effect == "Deny"]
    if not refs:
        return Culprit()
    ref = refs[0]
    statements = _statements(candidates.get(ref.policy))
    document = statements[ref.index] if 0 <= ref.index < len(statements) else None
    return Culprit(
        policy=ref.policy,
        policy_id=_policy_id(ref.policy),
        statement_label=_statement_label(ref.sid, ref.index),
        statement_doc=document,
    )


def _org_culprit(
    evaluation: Any,
    scenario: dict[str, Any],
    kind: str,
    levels: list[list[NamedPolicy]],
    labels: list[str],
) -> Culprit:
    """The level (and policy, statement) of an SCP/RCP denial."""
    key = "scps" if kind == "scp" else "rcps"
    if evaluation.decision == "explicitDeny":
        attached = [
            (org_policy_name(policy, labels[number]), policy, labels[number])
            for number, level in enumerate(levels)
            for policy in level
        ]
        found = _find_denier(evaluation, kind, {name: p.document for name, p, _ in attached})
        for name, policy, label in attached:
            if name == found.policy:
                return Culprit(
                    policy.name,
                    _policy_id(policy.name),
                    label,
                    found.statement_label,
                    found.statement_doc,
                )
        return found
    # implicit deny: the first level where nothing allows the request
    for number, level in enumerate(levels):
        probe = _probe(scenario, key, level)
        layer = next((item for item in probe.layers if item.layer == kind), None)
        if layer is not None and layer.decision != ALLOWED:
            if not level:
                return Culprit(level=labels[number])
            names = ", ".join(policy.name for policy in level)
            first = level[0].name if len(level) == 1 else names
            return Culprit(
                policy=first,
                policy_id=_policy_id(level[0].name) if len(level) == 1 else None,
                level=labels[number],
            )
    return Culprit()


def _probe(scenario: dict[str, Any], key: str, level: list[NamedPolicy]) -> Any:
    """Evaluate one SCP/RCP level alone (identity allows everything)."""
    probe = {
        "request": scenario["request"],
        "policies": {
            "scps": [],
            "rcps": [],
            "permissions_boundary": None,
            "identity": [ALLOW_ALL],
            "resource_policy": None,
        },
    }
    probe["policies"][key] = [[policy.document for policy in level]]
    return evaluate_scenario(probe)


def _key_policy_enables_iam(key: KmsKey | None, account_id: str, action: str) -> bool:
    """Does the key policy allow the account (its root), so IAM policies count?"""
    if key is None or key.key_policy is None:
        return True
    for statement in _statements(key.key_policy):
        if statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        aws = principal.get("AWS") if isinstance(principal, dict) else principal
        names = [aws] if isinstance(aws, str) else list(aws or [])
        if not any(
            name in (account_id, "*") or name.endswith(f":{account_id}:root") for name in names
        ):
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if any(glob_match(pattern, action, ignore_case=True) for pattern in actions):
            return True
    return False


# --- verdicts -------------------------------------------------------------------------


@dataclass
class _AccountContext:
    organization: Organization
    collection: AccountCollection
    partition: str

    def __post_init__(self) -> None:
        account = self.collection.account
        self.account = account
        self.scps = self.organization.policy_path(account, "scp")
        self.rcps = self.organization.policy_path(account, "rcp")
        self.labels = level_labels(account)


def _answer_for(
    answers: list[SimulatorAnswer], action: str, resource: str
) -> SimulatorAnswer | None:
    for answer in answers:
        if answer.action.lower() == action.lower() and answer.resource == resource:
            return answer
    return None


def _check_name(action: str, key: KmsKey | None) -> str:
    """Checks of the configured key carry the plain action name; other keys (vault keys)
    add which key, so every check key stays unique within a region."""
    if key is None or not key.sources or "configured" in key.sources:
        return action
    label = key.aliases[0] if key.aliases else key.key_id
    return f"{action} ({label})"


def _describe_failure(
    action: str,
    role: Role,
    layer: str | None,
    decision: str,
    culprit: Culprit,
    resource: str,
    enables_iam: bool,
) -> str:
    # a key policy is named after its key: no need to repeat the key ARN
    target = "" if resource == "*" or layer == "resource_policy" else f" on {resource}"
    if decision == "explicitDeny":
        where = f" at {culprit.level}" if culprit.level else ""
        words = LAYER_WORDS.get(layer or "", "policy")
        policy = culprit.policy or "(unnamed policy)"
        if layer == "resource_policy":
            subject = policy[0].upper() + policy[1:]
        else:
            subject = f"{words[0].upper() + words[1:]} {policy}{where}"
        return (
            f"{subject}, statement {culprit.statement_label}, denies {action}{target} "
            f"to role {role.name}."
        )
    if layer in ("scp", "rcp"):
        words = LAYER_WORDS[layer]
        if culprit.policy:
            return (
                f"No {words} at {culprit.level} allows {action}{target} (attached there: "
                f"{culprit.policy}); every level of the organization path must allow it."
            )
        return f"No {words} is attached at {culprit.level}, so {action} is not allowed there."
    if layer == "permissions_boundary":
        return (
            f"The permissions boundary {culprit.policy} of role {role.name} does not allow "
            f"{action}{target}."
        )
    if layer == "resource_policy":
        if not enables_iam:
            return (
                f"The {culprit.policy} lacks the default statement allowing the account, so "
                f"role {role.name}'s IAM allow for {action} has no effect."
            )
        return f"The {culprit.policy} does not allow role {role.name} to use {action}."
    return f"No identity policy of role {role.name} allows {action}{target}."


def resource_rcps(
    ctx: _AccountContext, key: KmsKey | None
) -> tuple[list[list[NamedPolicy]], list[str]]:
    """The RCP path that governs the request's resource, with its level names: the key
    owner's for a customer managed key in another account of the organization, none for
    an AWS managed key (RCPs do not apply to AWS managed keys: AWS KMS Developer Guide,
    "Resource control policies in AWS KMS"), the role's account's otherwise."""
    if key is None:
        return ctx.rcps, ctx.labels
    if key.key_manager == "AWS":
        return [], ctx.labels
    owner = key.owner_account
    if owner and owner != ctx.account.id:
        owner_account = ctx.organization.member(owner)
        if owner_account is None:
            return [], ctx.labels
        return ctx.organization.policy_path(owner_account, "rcp"), level_labels(owner_account)
    return ctx.rcps, ctx.labels


def _scenario_documents(scenario: dict[str, Any]) -> list[dict[str, Any] | None]:
    policies = scenario["policies"]
    return [
        *(document for level in policies["scps"] for document in level),
        *(document for level in policies["rcps"] for document in level),
        policies["permissions_boundary"],
        *policies["identity"],
        policies["resource_policy"],
    ]


def _absent_keys_note(keys: tuple[str, ...]) -> str:
    return (
        f" This verdict assumes {', '.join(keys)} absent or as documented in docs/context.md:"
        " vaultscan cannot know their value before the call."
    )


def _decide_request(
    ctx: _AccountContext,
    role: Role,
    region: str,
    requirement: Requirement,
    key: KmsKey | None,
    answers: list[SimulatorAnswer],
) -> CheckResult:
    account = ctx.account
    resource, request_context = question_for(
        organization=ctx.organization,
        account=account,
        role=role,
        region=region,
        requirement=requirement,
        key=key,
        partition=ctx.partition,
        scanned_at=ctx.collection.scanned_at,
    )
    check = _check_name(requirement.action, key)
    rcps, rcp_labels = resource_rcps(ctx, key)
    scenario = build_scenario(
        role=role,
        account=account,
        action=requirement.action,
        resource=resource,
        context=request_context.values,
        scps=ctx.scps,
        rcps=rcps,
        key=key,
        name=f"{account.id} {region} {role.name} {check}",
        rcp_labels=rcp_labels,
    )
    evaluation = evaluate_scenario(scenario)
    decision, layer = evaluation.decision, evaluation.deciding_layer
    scenario["expected"] = decision
    scenario["deciding_layer"] = layer
    iam_side = iam_side_decision(evaluation)
    answer = _answer_for(answers, requirement.action, resource)
    simulated = answer.decision if answer else None
    missing = answer.missing_context if answer else ()
    # an answer that rests on keys vaultscan did not send is stored, never trusted alone
    disagreement = simulated is not None and simulated != iam_side and not missing
    # a simulator deny counts unless the engine agrees on those layers and the key
    # policy then grants directly (the simulator never sees the key policy)
    simulator_denies = simulated is not None and simulated != ALLOWED and disagreement
    result = CheckResult(
        account_id=account.id,
        region=region,
        role_arn=role.arn,
        check=check,
        resource=resource,
        status="pass",
        decision=decision,  # type: ignore[arg-type]
        deciding_layer=layer,
        simulator_decision=simulated,
        simulator_source=answer.source if answer else None,
        disagreement=disagreement,
        scenario=scenario,
        explanation=evaluation.to_dict(),
        absent_keys=_rests_on(scenario, requirement.action, resource, request_context),
        simulator_missing=tuple(missing),
    )
    if decision == ALLOWED and not simulator_denies:
        result.message = (
            f"Role {role.name} may perform {requirement.action}"
            + ("" if resource == "*" else f" on {resource}")
            + "."
        )
    else:
        result.status = "fail"
        _describe_fail(result, ctx, evaluation, scenario, key, role, requirement, rcps, rcp_labels)
    if key is not None and key.choice:
        result.message += f" Key: {key.choice}"
    if disagreement:
        result.message += (
            f" The simulator ({answer.source if answer else '?'}) says {simulated}; "
            f"vaultscan's engine says {iam_side} over the same layers (identity policies, "
            "permissions boundary, SCPs)."
        )
    elif missing and simulated != iam_side:
        result.message += (
            f" AWS's simulator says {simulated}, resting on {', '.join(missing)}, which "
            f"vaultscan did not send (it cannot know them); not counted against the role."
        )
    if result.absent_keys:
        result.message += _absent_keys_note(result.absent_keys)
    return result


def _rests_on(
    scenario: dict[str, Any], action: str, resource: str, request_context: RequestContext
) -> tuple[str, ...]:
    keys = keys_the_verdict_rests_on(
        _scenario_documents(scenario),
        action,
        resource,
        engine_context(request_context.values),
        representative=request_context.representative,
        absent_by_rule=request_context.absent_by_rule,
    )
    return tuple(keys)


def _describe_fail(
    result: CheckResult,
    ctx: _AccountContext,
    evaluation: Any,
    scenario: dict[str, Any],
    key: KmsKey | None,
    role: Role,
    requirement: Requirement,
    rcps: list[list[NamedPolicy]],
    rcp_labels: list[str],
) -> None:
    decision, layer = evaluation.decision, evaluation.deciding_layer
    simulated = result.simulator_decision
    resource = result.resource
    culprit = _culprit(ctx, evaluation, scenario, layer, key, role, rcps, rcp_labels)
    cross_account = key is not None and key.owner_account not in ("", ctx.account.id)
    # a key in another account must name the role (or its account) itself: the fix is a
    # statement for the role, not the owner's default statement
    enables_iam = cross_account or _key_policy_enables_iam(key, ctx.account.id, requirement.action)
    if decision != ALLOWED:
        result.message = _describe_failure(
            requirement.action, role, layer, decision, culprit, resource, enables_iam
        )
        if cross_account and layer == "resource_policy" and decision != "explicitDeny":
            result.message = (
                f"The {culprit.policy} (account {key.owner_account}) does not allow role "
                f"{role.name} of account {ctx.account.id} to use {requirement.action}: a key "
                "in another account must allow the role or its account in its key policy."
            )
    else:
        result.message = (
            f"AWS's IAM policy simulator denies {requirement.action} to role "
            f"{role.name} ({simulated}) although vaultscan's engine allows it."
        )
    result.policy = culprit.policy
    result.statement = culprit.statement_label
    result.remediation = fix_for(
        Finding(
            account_id=ctx.account.id,
            region=result.region,
            role_arn=role.arn,
            action=requirement.action,
            resource=resource,
            layer=layer if decision != ALLOWED else None,
            decision=decision if decision != ALLOWED else simulated,
            policy=culprit.policy,
            policy_id=culprit.policy_id,
            level=culprit.level,
            statement_label=culprit.statement_label,
            statement_doc=culprit.statement_doc,
            key_arn=key.arn if key else None,
            key_policy_enables_iam=enables_iam,
        )
    )


def _culprit(
    ctx: _AccountContext,
    evaluation: Any,
    scenario: dict[str, Any],
    layer: str | None,
    key: KmsKey | None,
    role: Role,
    rcps: list[list[NamedPolicy]],
    rcp_labels: list[str],
) -> Culprit:
    if layer == "scp":
        return _org_culprit(evaluation, scenario, "scp", ctx.scps, ctx.labels)
    if layer == "rcp":
        return _org_culprit(evaluation, scenario, "rcp", rcps, rcp_labels)
    if layer == "permissions_boundary" and role.permissions_boundary is not None:
        boundary = role.permissions_boundary
        if evaluation.decision == "explicitDeny":
            return _find_denier(evaluation, layer, {boundary.name: boundary.document})
        return Culprit(policy=boundary.name, policy_id=boundary.name)
    if layer == "identity":
        if evaluation.decision == "explicitDeny":
            documents = {policy.name: policy.document for policy in role.identity_policies}
            return _find_denier(evaluation, layer, documents)
        return Culprit()
    if layer == "resource_policy" and key is not None:
        name = key_policy_name(key.arn)
        if evaluation.decision == "explicitDeny":
            return _find_denier(evaluation, layer, {name: key.key_policy or {}})
        return Culprit(policy=name, policy_id=key.arn)
    return Culprit()


# --- key state and other account-level checks -----------------------------------------

_USABLE_STATE = "Enabled"


def key_state_result(account: Account, key: KmsKey, configured_alias: str | None) -> CheckResult:
    """Can this key encrypt a vault at all: enabled, not being deleted, symmetric?"""
    check = _check_name(KEY_STATE_CHECK, key)
    label = f"{key.aliases[0]} ({key.arn})" if key.aliases else key.arn
    result = CheckResult(
        account_id=account.id,
        region=key.region,
        role_arn="",
        check=check,
        resource=key.arn,
        status="pass",
    )
    state = key.key_state
    if state == "Unreadable":
        result.status = "error"
        reasons = [item.split(":", 1)[1] for item in key.sources if item.startswith("unreadable:")]
        result.message = (
            f"Key {label} could not be read"
            + (f" ({reasons[0]})" if reasons else "")
            + ": allow the read role kms:DescribeKey and kms:GetKeyPolicy on it (and check "
            "the key policy allows the account); its checks are undecided, neither pass nor fail."
        )
    elif state in ("NotCreated", "NotFound"):
        alias = key.aliases[0] if key.aliases else configured_alias
        if alias and alias.startswith("alias/aws/"):
            result.message = (
                f"{alias} does not exist yet in {key.region}; AWS creates this AWS managed "
                "key the first time a service uses it."
            )
        else:
            result.status = "fail"
            result.message = f"Key {alias or key.arn} does not exist in {key.region}."
            result.remediation = key_state_fix(key.arn, key.region, "NotCreated", alias=alias)
    elif state != _USABLE_STATE:
        result.status = "fail"
        when = (
            f" on {key.deletion_date:%Y-%m-%d}"
            if state == "PendingDeletion" and key.deletion_date
            else ""
        )
        result.message = f"Key {label} is {_state_words(state)}{when}; it cannot encrypt a vault."
        result.remediation = key_state_fix(key.arn, key.region, state)
    elif key.key_spec != "SYMMETRIC_DEFAULT" or key.key_usage != "ENCRYPT_DECRYPT":
        result.status = "fail"
        result.message = (
            f"Key {label} is {key.key_spec}/{key.key_usage}; AWS Backup vaults need a "
            "SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT."
        )
        result.remediation = key_state_fix(key.arn, key.region, "WrongSpec")
    else:
        result.message = f"Key {label} is enabled and symmetric."
    if key.choice:
        result.message += f" Chosen: {key.choice}"
    return result


def _state_words(state: str) -> str:
    return {
        "Disabled": "disabled",
        "PendingDeletion": "scheduled for deletion",
        "PendingReplicaDeletion": "scheduled for deletion (replica)",
        "PendingImport": "waiting for imported key material",
        "Unavailable": "unavailable (its custom key store is disconnected)",
    }.get(state, f"in state {state}")


def _key_unusable_result(
    account: Account, role: Role, region: str, action: str, key: KmsKey
) -> CheckResult:
    """A key action that cannot be decided because the key (policy) could not be read."""
    label = key.aliases[0] if key.aliases else key.arn
    reasons = [item.split(":", 1)[1] for item in key.sources if item.startswith("unreadable:")]
    why = f" ({reasons[0]})" if reasons else ""
    return CheckResult(
        account_id=account.id,
        region=region,
        role_arn=role.arn,
        check=_check_name(action, key),
        resource=key.arn,
        status="error",
        message=(
            f"Not decided: the policy of key {label} could not be read{why}, so whether "
            f"role {role.name} may use {action} on it is unknown."
        ),
    )


def decide_account(
    organization: Organization,
    collection: AccountCollection,
    profiles: list[Profile],
    *,
    partition: str = "aws",
    regions: list[str] | None = None,
) -> list[CheckResult]:
    """Every verdict for one collected account (empty when the account could not be read)."""
    if collection.error:
        return []
    ctx = _AccountContext(organization, collection, partition)
    account = collection.account
    regions = regions or sorted(
        set(collection.keys) | {region for _arn, region in collection.simulations}
    )
    results: dict[str, CheckResult] = {}

    def keep(result: CheckResult) -> None:
        results.setdefault(result.key, result)

    if not collection.roles:
        keep(
            CheckResult(
                account_id=account.id,
                region=GLOBAL_REGION,
                role_arn="",
                check=ROLE_PRESENT_CHECK,
                resource="",
                status="fail",
                message="No designated backup role was found in this account (settings: roles).",
                remediation={
                    "kind": "create-designated-role",
                    "target": account.id,
                    "summary": "Create the backup role, or adjust roles.names / tag / path.",
                    "statement": None,
                    "commands": [],
                },
            )
        )
    requirements = [req for profile in profiles for req in profile.requirements]
    for region in regions:
        keys = collection.keys.get(region, [])
        for key in keys:
            keep(key_state_result(account, key, _configured_alias(key)))
        for role in collection.roles:
            answers = collection.simulations.get((role.arn, region), [])
            for requirement in requirements:
                if not requirement.needs_key:
                    keep(_decide_request(ctx, role, region, requirement, None, answers))
                    continue
                for key in keys:
                    if key.key_state in ("NotCreated", "NotFound"):
                        continue  # nothing to check yet; the key-state check says why
                    if key.key_policy is None or key.key_state == "Unreadable":
                        keep(_key_unusable_result(account, role, region, requirement.action, key))
                    else:
                        keep(_decide_request(ctx, role, region, requirement, key, answers))
    return list(results.values())


def _configured_alias(key: KmsKey) -> str | None:
    return next((alias for alias in key.aliases if alias.startswith("alias/")), None)
