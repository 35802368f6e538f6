"""Layered evaluation of one authorization request (IAM: Policy evaluation logic;
Cross-account policy evaluation logic; SCP and RCP evaluation; Permissions boundaries).

Order of reasoning:
1. An explicit Deny in any layer denies (deciding layer: the first of scp, rcp,
   permissions_boundary, identity, resource_policy that denies).
2. Every level of the RCP path (the resource's account, for the services RCPs
   support) and of the SCP path (root to account) must allow; RCPs are checked first,
   as in the documented flow. SCPs do not affect service-linked roles.
3. Same account: an allow in the identity policies (within the boundary) or a
   resource-policy statement naming the principal grants. Within an account a
   boundary's implicit deny does not limit a resource policy that names the role
   *session* (or everyone); it does limit one that names the role ARN.
4. Cross-account: both the identity policies (within the boundary) and the resource
   policy must allow.
5. Each service's own rules about its resource policy live in its authorizer
   (scanner.policy.authorizer): KMS keys (scanner.policy.kms) and role trust policies
   (scanner.policy.trust) need the policy to trust the account before IAM policies count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from scanner.policy.authorizer import ResourceAuthorizer
from scanner.policy.authorizers import authorizer_for
from scanner.policy.conditions import condition_matches
from scanner.policy.context import Request
from scanner.policy.grammar import CompiledStatement
from scanner.policy.policyset import NamedCompiled, Pair, PolicySet
from scanner.policy.principal import MatchKind, match_principal, not_principal_applies
from scanner.policy.result import (
    AccountTrust,
    ConditionRef,
    Evaluation,
    LayerResult,
    LevelResult,
    StatementMiss,
    StatementRef,
)
from scanner.policy.vocabulary import LAYER_ORDER, Decision, Layer, MissReason, Reason

ALLOWED = Decision.ALLOWED
EXPLICIT_DENY = Decision.EXPLICIT_DENY
IMPLICIT_DENY = Decision.IMPLICIT_DENY

# "No permissions are required to perform this operation. If an administrator attaches a
# policy to your identity that explicitly denies access to the sts:GetCallerIdentity
# action, you can still perform this operation." (AWS STS API Reference: GetCallerIdentity)
NO_PERMISSION_ACTIONS = frozenset({"sts:getcalleridentity"})
DIRECT_KINDS: frozenset[MatchKind] = frozenset({"wildcard", "session", "role"})
SESSION_KINDS: frozenset[MatchKind] = frozenset({"wildcard", "session"})

Match = tuple[StatementRef, CompiledStatement, "MatchKind | None"]

__all__ = [
    "ALLOWED",
    "EXPLICIT_DENY",
    "IMPLICIT_DENY",
    "LAYER_ORDER",
    "Evaluation",
    "LayerResult",
    "StatementRef",
    "evaluate",
    "evaluate_request",
]


class Answerable(Protocol):
    """What evaluate() needs of a scenario."""

    def request(self) -> Request: ...

    def policy_set(self) -> PolicySet: ...


def evaluate(scenario: Answerable) -> Evaluation:
    """The decision for one scenario, with the statements that decided each layer."""
    return evaluate_request(scenario.request(), scenario.policy_set())


# --- matching statements ---------------------------------------------------------------


def _collect(
    pairs: Iterable[Pair], request: Request, allows: list[Match], denies: list[Match]
) -> None:
    """Add the statements among `pairs` (their Action and Resource match) whose conditions
    match the request to `allows` / `denies` (identity-based policies, SCPs)."""
    context = request.context
    for named, statement in pairs:
        for condition in statement.conditions:
            if not condition_matches(condition, context):
                break
        else:
            ref = named.refs[statement.index]
            (allows if statement.effect == "Allow" else denies).append((ref, statement, None))


def _collect_resource_based(
    pairs: Iterable[Pair],
    request: Request,
    allows: list[Match],
    denies: list[Match],
    misses: list[StatementMiss],
) -> None:
    """As _collect, for resource-based policies and RCPs: the Principal must name the
    caller too. Statements that do not apply go to `misses`, with why."""
    context = request.context
    principal = request.principal
    for named, statement in pairs:
        kind: MatchKind | None = None
        spec = statement.principal
        if spec is None:
            continue
        if statement.not_principal:
            applies = not_principal_applies(spec, principal, statement.effect)
        else:
            kind = match_principal(spec, principal)
            applies = kind is not None
        if not applies:
            misses.append(named.miss(statement, -1, None))
            continue
        for number, condition in enumerate(statement.conditions):
            if not condition_matches(condition, context):
                misses.append(named.miss(statement, number, kind))
                break
        else:
            ref = named.refs[statement.index]
            (allows if statement.effect == "Allow" else denies).append((ref, statement, kind))


def _sort(
    pairs: Iterable[Pair],
    request: Request,
    resource_based: bool,
    allows: list[Match],
    denies: list[Match],
    misses: list[StatementMiss],
) -> None:
    if resource_based:
        _collect_resource_based(pairs, request, allows, denies, misses)
    else:
        _collect(pairs, request, allows, denies)


def _refs(matches: list[Match]) -> list[StatementRef]:
    return [ref for ref, _statement, _kind in matches]


def _simple_layer(
    layer: Layer, pairs: Iterable[Pair], request: Request, resource_based: bool = False
) -> tuple[LayerResult, list[Match], list[StatementMiss]]:
    allows: list[Match] = []
    denies: list[Match] = []
    misses: list[StatementMiss] = []
    _sort(pairs, request, resource_based, allows, denies, misses)
    if denies:
        result = LayerResult(layer, EXPLICIT_DENY, _refs(denies), misses=tuple(misses))
    elif allows:
        result = LayerResult(layer, ALLOWED, _refs(allows), misses=tuple(misses))
    else:
        result = LayerResult(layer, IMPLICIT_DENY, [], Reason.NO_ALLOW, misses=tuple(misses))
    return result, allows, misses


# --- the organization layers -----------------------------------------------------------


def _org_layer(
    layer: Layer,
    levels: tuple[tuple[NamedCompiled, ...], ...],
    policies: PolicySet,
    request: Request,
) -> LayerResult:
    """Every level must allow; a Deny at any level denies."""
    resource_based = layer == Layer.RCP
    results: list[LevelResult] = []
    misses: list[StatementMiss] = []
    denied = unallowed = False
    for number, level in enumerate(levels):
        known = None if resource_based else policies.fixed_level(number, request)
        if known is not None:
            # no statement of this level reads the request context: its result is fixed
            results.append(known)
            denied = denied or known.decision is EXPLICIT_DENY
            unallowed = unallowed or known.decision is IMPLICIT_DENY
            continue
        allows: list[Match] = []
        denies: list[Match] = []
        pairs = policies.candidates((layer, number), level, request)
        _sort(pairs, request, resource_based, allows, denies, misses)
        if denies:
            denied = True
            decision = EXPLICIT_DENY
        elif allows:
            decision = ALLOWED
        else:
            unallowed = True
            decision = IMPLICIT_DENY
        results.append(
            LevelResult(
                number,
                decision,
                tuple([match[0] for match in allows]),
                tuple([match[0] for match in denies]),
            )
        )
    kept = tuple(results)
    if denied:
        refs = [ref for level in kept for ref in level.denying]
        return LayerResult(layer, EXPLICIT_DENY, refs, levels=kept, misses=tuple(misses))
    if unallowed:
        reason = Reason.NO_ALLOW_AT_LEVEL
        return LayerResult(layer, IMPLICIT_DENY, [], reason, levels=kept, misses=tuple(misses))
    refs = [ref for level in kept for ref in level.allowing]
    return LayerResult(layer, ALLOWED, refs, levels=kept, misses=tuple(misses))


def _scp_layer(request: Request, policies: PolicySet) -> LayerResult | None:
    if not policies.scps:
        return None
    if request.principal.service_linked:
        # "SCPs do not affect any service-linked role" (AWS Organizations: Service
        # control policies, "SCP effects on permissions").
        return LayerResult(Layer.SCP, ALLOWED, [], Reason.SERVICE_LINKED_ROLE)
    return _org_layer(Layer.SCP, policies.scps, policies, request)


def _rcp_layer(
    request: Request, policies: PolicySet, authorizer: ResourceAuthorizer
) -> LayerResult | None:
    if not policies.rcps:
        return None
    exemption = authorizer.rcp_exemption(request)
    if exemption is not None:
        return LayerResult(Layer.RCP, ALLOWED, [], exemption, subject=request.service)
    return _org_layer(Layer.RCP, policies.rcps, policies, request)


# --- principal's policies --------------------------------------------------------------


def _boundary_layer(request: Request, policies: PolicySet) -> LayerResult | None:
    if policies.permissions_boundary is None:
        return None
    pairs = policies.candidates("boundary", (policies.permissions_boundary,), request)
    return _simple_layer(Layer.PERMISSIONS_BOUNDARY, pairs, request)[0]


def _identity_layer(request: Request, policies: PolicySet) -> LayerResult:
    pairs = policies.candidates("identity", policies.identity, request)
    return _simple_layer(Layer.IDENTITY, pairs, request)[0]


# --- the resource's policy -------------------------------------------------------------


@dataclass(slots=True)
class _Resource:
    """The resource policy layer (None when absent) and what the decision needs of it."""

    layer: LayerResult | None = None
    kinds: frozenset[MatchKind] = frozenset()  # how allowing statements name the caller
    consulted: bool = False  # the policy (or its absence) counts for this request


def _resource_layer(
    request: Request, policies: PolicySet, authorizer: ResourceAuthorizer
) -> _Resource:
    if policies.resource_policy is None:
        reason = authorizer.missing_policy(request)
        if reason is None:
            return _Resource()
        layer = LayerResult(Layer.RESOURCE_POLICY, IMPLICIT_DENY, [], reason)
        if authorizer.requires_account_trust:
            layer.trust = AccountTrust(authorizer.trust_account(request), False)
        return _Resource(layer, consulted=authorizer.requires_account_trust)
    if not authorizer.consults_resource_policy(request):
        reason = authorizer.not_consulted_reason
        return _Resource(LayerResult(Layer.RESOURCE_POLICY, ALLOWED, [], reason))
    pairs = policies.candidates("resource", (policies.resource_policy,), request)
    layer, allows, misses = _simple_layer(Layer.RESOURCE_POLICY, pairs, request, True)
    kinds = frozenset(kind for _ref, _statement, kind in allows if kind is not None)
    if authorizer.requires_account_trust:
        layer.trust = _account_trust(authorizer.trust_account(request), allows, misses)
    return _Resource(layer, kinds, consulted=True)


def _account_trust(account: str, allows: list[Match], misses: list[StatementMiss]) -> AccountTrust:
    trusting = [(ref, statement) for ref, statement, kind in allows if kind == "account"]
    if not trusting and not misses:
        return AccountTrust(account, False)
    conditions = tuple(
        ConditionRef(condition.operator, condition.written_key or condition.key, condition.values)
        for _ref, statement in trusting
        for condition in statement.conditions
    )
    unmet = tuple(
        miss
        for miss in misses
        if miss.principal_kind == "account"
        and miss.why is MissReason.CONDITION
        and miss.statement.effect == "Allow"
    )
    refs = tuple(ref for ref, _statement in trusting)
    return AccountTrust(account, bool(trusting), refs, conditions, unmet)


# --- the decision ----------------------------------------------------------------------


def evaluate_request(request: Request, policies: PolicySet) -> Evaluation:
    if request.action in NO_PERMISSION_ACTIONS:
        layer = LayerResult(Layer.IDENTITY, ALLOWED, [], Reason.NO_PERMISSION_NEEDED)
        return Evaluation(ALLOWED, None, [layer])
    authorizer = authorizer_for(request.action, request.resource)
    scp = _scp_layer(request, policies)
    rcp = _rcp_layer(request, policies, authorizer)
    boundary = _boundary_layer(request, policies)
    identity = _identity_layer(request, policies)
    resource = _resource_layer(request, policies, authorizer)
    layers = [layer for layer in (scp, rcp, boundary, identity, resource.layer) if layer]

    decided = _organization_decision(layers, scp, rcp)
    if decided is None:
        identity_effective = _identity_effective(identity, resource, authorizer)
        if identity_effective is False and identity.decision is ALLOWED:
            _explain_missing_trust(resource, authorizer)
        boundary_ok = boundary is None or boundary.decision is ALLOWED
        if request.cross_account:
            decided = _cross_account(request, authorizer, identity, boundary_ok, resource)
        else:
            decided = _same_account(identity, identity_effective, boundary_ok, resource)
    return Evaluation(decided[0], decided[1], layers)


Decided = tuple[Decision, Layer | None]


def _organization_decision(
    layers: list[LayerResult], scp: LayerResult | None, rcp: LayerResult | None
) -> Decided | None:
    """An explicit Deny in any layer, then the RCP and SCP implicit denies."""
    denying = {layer.layer for layer in layers if layer.decision is EXPLICIT_DENY}
    for name in LAYER_ORDER:
        if name in denying:
            return EXPLICIT_DENY, name
    # The enforcement code evaluates RCPs before SCPs and returns a final Deny at the
    # first of them without an applicable Allow (IAM: How AWS enforcement code logic
    # evaluates requests, "AWS Organizations RCPs", then "AWS Organizations SCPs").
    for layer in (rcp, scp):
        if layer is not None and layer.decision is IMPLICIT_DENY:
            return IMPLICIT_DENY, layer.layer
    return None


def _identity_effective(
    identity: LayerResult, resource: _Resource, authorizer: ResourceAuthorizer
) -> bool:
    """KMS key policies and role trust policies: IAM policies count only when the
    resource's policy allows the principal's account."""
    allows = identity.decision is ALLOWED
    if authorizer.requires_account_trust and resource.consulted and "account" not in resource.kinds:
        return False
    return allows


def _explain_missing_trust(resource: _Resource, authorizer: ResourceAuthorizer) -> None:
    """Say why an IAM allow has no effect, unless the layer already says something else
    or the policy names the caller directly."""
    layer = resource.layer
    if layer is None or layer.reason not in (None, Reason.NO_ALLOW):
        return
    if resource.kinds & DIRECT_KINDS:
        return
    trust = layer.trust
    if trust is not None and trust.unmet:
        layer.reason = Reason.ACCOUNT_TRUST_CONDITIONS_UNMET
        layer.subject = authorizer.policy_word
    else:
        layer.reason = authorizer.untrusted_reason
        layer.subject = trust.account if trust is not None else None


def _cross_account(
    request: Request,
    authorizer: ResourceAuthorizer,
    identity: LayerResult,
    boundary_ok: bool,
    resource: _Resource,
) -> Decided:
    if identity.decision is not ALLOWED:
        return IMPLICIT_DENY, Layer.IDENTITY
    if authorizer.consults_resource_policy(request) and not resource.kinds:
        return IMPLICIT_DENY, Layer.RESOURCE_POLICY
    if not boundary_ok:
        return IMPLICIT_DENY, Layer.PERMISSIONS_BOUNDARY
    return ALLOWED, None


def _same_account(
    identity: LayerResult, identity_effective: bool, boundary_ok: bool, resource: _Resource
) -> Decided:
    direct = bool(resource.kinds & DIRECT_KINDS)
    if (identity_effective or direct) and boundary_ok:
        return ALLOWED, None
    if resource.kinds & SESSION_KINDS:
        return ALLOWED, None  # names the session: a boundary's implicit deny does not limit it
    if identity_effective or direct:
        return IMPLICIT_DENY, Layer.PERMISSIONS_BOUNDARY
    if identity.decision is ALLOWED:
        return IMPLICIT_DENY, Layer.RESOURCE_POLICY  # the policy does not trust the account
    return IMPLICIT_DENY, Layer.IDENTITY
