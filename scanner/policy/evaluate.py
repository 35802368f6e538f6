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
5. KMS keys: see scanner.policy.kms. Role trust policies follow the same rule: see
   scanner.policy.trust.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from scanner.policy.conditions import condition_matches
from scanner.policy.context import Request
from scanner.policy.grammar import CompiledPolicy, CompiledStatement
from scanner.policy.kms import (
    NO_ACCOUNT_TRUST_NOTE,
    NO_KEY_POLICY_NOTE,
    RCP_RETIRE_GRANT_NOTE,
    RETIRE_GRANT_NOTE,
    is_key_request,
    key_policy_consulted,
    rcps_consulted,
)
from scanner.policy.principal import MatchKind, match_principal, not_principal_applies
from scanner.policy.trust import NO_ACCOUNT_TRUST_NOTE as NO_ROLE_TRUST_NOTE
from scanner.policy.trust import NO_TRUST_POLICY_NOTE, is_trust_request

if TYPE_CHECKING:
    from scanner.policy.scenario import Scenario

ALLOWED = "allowed"
EXPLICIT_DENY = "explicitDeny"
IMPLICIT_DENY = "implicitDeny"
LAYER_ORDER = ("scp", "rcp", "permissions_boundary", "identity", "resource_policy")

# Services whose resources RCPs govern (AWS Organizations: Resource control policies,
# "List of AWS services that support RCPs"). Other services ignore RCPs.
RCP_SERVICES = frozenset(
    {"s3", "sts", "kms", "sqs", "secretsmanager", "cognito-idp", "logs", "dynamodb", "ecr", "aoss"}
)
NO_ALLOW_NOTE = "no statement allows this request"
# "No permissions are required to perform this operation. If an administrator attaches a
# policy to your identity that explicitly denies access to the sts:GetCallerIdentity
# action, you can still perform this operation." (AWS STS API Reference: GetCallerIdentity)
NO_PERMISSION_ACTIONS = frozenset({"sts:getcalleridentity"})
NO_PERMISSION_NOTE = "not consulted: this action needs no permission and cannot be denied"
SERVICE_LINKED_NOTE = "not applied: SCPs do not affect service-linked roles"
NO_RESOURCE_POLICY_NOTE = (
    "no resource policy given: access from another account needs the resource's policy to allow it"
)
DIRECT_KINDS: frozenset[MatchKind] = frozenset({"wildcard", "session", "role"})
SESSION_KINDS: frozenset[MatchKind] = frozenset({"wildcard", "session"})


@dataclass(frozen=True)
class StatementRef:
    """One statement that decided a layer: enough for a person to find and fix it."""

    policy: str
    sid: str | None
    index: int
    effect: str

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "sid": self.sid, "index": self.index, "effect": self.effect}


@dataclass
class LayerResult:
    layer: str
    decision: str
    statements: list[StatementRef] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "layer": self.layer,
            "decision": self.decision,
            "statements": [ref.to_dict() for ref in self.statements],
        }
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Evaluation:
    decision: str
    deciding_layer: str | None
    layers: list[LayerResult]

    def layer(self, name: str) -> LayerResult | None:
        return next((layer for layer in self.layers if layer.layer == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "deciding_layer": self.deciding_layer,
            "layers": [layer.to_dict() for layer in self.layers],
        }


@dataclass(frozen=True)
class NamedCompiled:
    name: str
    policy: CompiledPolicy

    def ref(self, statement: CompiledStatement) -> StatementRef:
        return _statement_ref(self.name, statement.sid, statement.index, statement.effect)


@lru_cache(maxsize=65536)
def _statement_ref(policy: str, sid: str | None, index: int, effect: str) -> StatementRef:
    return StatementRef(policy, sid, index, effect)


@dataclass(frozen=True)
class PolicySet:
    """Compiled policies of a request, each with the name explanations use."""

    scps: tuple[tuple[NamedCompiled, ...], ...]
    rcps: tuple[tuple[NamedCompiled, ...], ...]
    permissions_boundary: NamedCompiled | None
    identity: tuple[NamedCompiled, ...]
    resource_policy: NamedCompiled | None
    # (layer part, action, resource) -> statements whose action and resource match,
    # split into those that need no context and those whose resource does
    _candidates: dict[tuple[Any, str, str], tuple[tuple[Pair, ...], tuple[Pair, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def candidates(
        self, part: Any, policies: Iterable[NamedCompiled], request: Request
    ) -> Iterable[Pair]:
        """Statements of `policies` whose Action and Resource match the request."""
        key = (part, request.action, request.resource)
        hit = self._candidates.get(key)
        if hit is None:
            static: list[Pair] = []
            dynamic: list[Pair] = []
            for named in policies:
                matched, needs_context = named.policy.split_candidates(
                    request.action, request.resource
                )
                static.extend((named, statement) for statement in matched)
                dynamic.extend((named, statement) for statement in needs_context)
            if len(self._candidates) >= 4096:
                self._candidates.clear()
            hit = (tuple(static), tuple(dynamic))
            self._candidates[key] = hit
        static_pairs, dynamic_pairs = hit
        if not dynamic_pairs:
            return static_pairs
        context = request.context
        matched = [p for p in dynamic_pairs if p[1].matches_resource(request.resource, context)]
        return (*static_pairs, *matched)


Pair = tuple[NamedCompiled, CompiledStatement]
Match = tuple[NamedCompiled, CompiledStatement, "MatchKind | None"]


def _collect(
    pairs: Iterable[Pair],
    request: Request,
    resource_based: bool,
    allows: list[Match],
    denies: list[Match],
) -> None:
    """Add the statements among `pairs` whose principal and conditions match the request
    (their action and resource already do) to `allows` / `denies`."""
    context = request.context
    principal = request.principal
    for named, statement in pairs:
        kind: MatchKind | None = None
        if resource_based:  # principal checks only exist in resource-based policies
            spec = statement.principal
            if spec is None:
                continue
            if statement.not_principal:
                if not not_principal_applies(spec, principal, statement.effect):
                    continue
            else:
                kind = match_principal(spec, principal)
                if kind is None:
                    continue
        if statement.conditions:
            for condition in statement.conditions:
                if not condition_matches(condition, context):
                    break
            else:
                (allows if statement.effect == "Allow" else denies).append((named, statement, kind))
            continue
        (allows if statement.effect == "Allow" else denies).append((named, statement, kind))


def _refs(matches: list[Match]) -> list[StatementRef]:
    return [named.ref(statement) for named, statement, _kind in matches]


def _simple_layer(
    layer: str, pairs: Iterable[Pair], request: Request, resource_based: bool = False
) -> tuple[LayerResult, list[Match]]:
    allows: list[Match] = []
    denies: list[Match] = []
    _collect(pairs, request, resource_based, allows, denies)
    if denies:
        return LayerResult(layer, EXPLICIT_DENY, _refs(denies)), allows
    if allows:
        return LayerResult(layer, ALLOWED, _refs(allows)), allows
    return LayerResult(layer, IMPLICIT_DENY, [], NO_ALLOW_NOTE), allows


def _org_layer(
    layer: str, policies: PolicySet, request: Request, resource_based: bool
) -> LayerResult:
    """Every level must allow; a Deny at any level denies."""
    denies: list[Match] = []
    allows: list[Match] = []
    unallowed: list[int] = []
    levels = policies.rcps if resource_based else policies.scps
    for number, level in enumerate(levels):
        before = len(allows)
        pairs = policies.candidates((layer, number), level, request)
        _collect(pairs, request, resource_based, allows, denies)
        if len(allows) == before:
            unallowed.append(number)
    if denies:
        return LayerResult(layer, EXPLICIT_DENY, _refs(denies))
    if unallowed:
        where = ", ".join(_level_name(n, len(levels)) for n in unallowed)
        return LayerResult(layer, IMPLICIT_DENY, [], f"no statement allows this request at {where}")
    return LayerResult(layer, ALLOWED, _refs(allows))


def _level_name(number: int, count: int) -> str:
    if number == 0:
        return "level 0 (root)"
    if number == count - 1:
        return f"level {number} (account)"
    return f"level {number}"


def evaluate(scenario: Scenario) -> Evaluation:
    """The decision for one scenario, with the statements that decided each layer."""
    return evaluate_request(scenario.request(), scenario.policy_set())


def evaluate_request(request: Request, policies: PolicySet) -> Evaluation:
    if request.action in NO_PERMISSION_ACTIONS:
        return Evaluation(ALLOWED, None, [LayerResult("identity", ALLOWED, [], NO_PERMISSION_NOTE)])
    layers: list[LayerResult] = []
    by_name: dict[str, LayerResult] = {}

    def add(result: LayerResult) -> LayerResult:
        layers.append(result)
        by_name[result.layer] = result
        return result

    if policies.scps:
        if request.principal.service_linked:
            # "SCPs do not affect any service-linked role" (AWS Organizations: Service
            # control policies, "SCP effects on permissions").
            add(LayerResult("scp", ALLOWED, [], SERVICE_LINKED_NOTE))
        else:
            add(_org_layer("scp", policies, request, resource_based=False))
    if policies.rcps:
        if request.service not in RCP_SERVICES:
            add(LayerResult("rcp", ALLOWED, [], f"RCPs do not apply to {request.service} actions"))
        elif not rcps_consulted(request.action):
            add(LayerResult("rcp", ALLOWED, [], RCP_RETIRE_GRANT_NOTE))
        else:
            add(_org_layer("rcp", policies, request, resource_based=True))
    boundary = None
    if policies.permissions_boundary is not None:
        pairs = policies.candidates("boundary", (policies.permissions_boundary,), request)
        boundary = add(_simple_layer("permissions_boundary", pairs, request)[0])
    pairs = policies.candidates("identity", policies.identity, request)
    identity = add(_simple_layer("identity", pairs, request)[0])

    key_request = is_key_request(request.action, request.resource)
    trust_request = not key_request and is_trust_request(request.action, request.resource)
    resource_matches: list[Match] = []
    resource = None
    if policies.resource_policy is not None:
        if key_request and not key_policy_consulted(request.action):
            resource = add(LayerResult("resource_policy", ALLOWED, [], RETIRE_GRANT_NOTE))
        else:
            pairs = policies.candidates("resource", (policies.resource_policy,), request)
            result, resource_matches = _simple_layer(
                "resource_policy", pairs, request, resource_based=True
            )
            resource = add(result)
    elif key_request and key_policy_consulted(request.action):
        resource = add(LayerResult("resource_policy", IMPLICIT_DENY, [], NO_KEY_POLICY_NOTE))
    elif trust_request:
        resource = add(LayerResult("resource_policy", IMPLICIT_DENY, [], NO_TRUST_POLICY_NOTE))
    elif request.cross_account and not key_request:
        add(LayerResult("resource_policy", IMPLICIT_DENY, [], NO_RESOURCE_POLICY_NOTE))

    decision, deciding = _decide(
        request, by_name, identity, boundary, resource, resource_matches, key_request, trust_request
    )
    return Evaluation(decision, deciding, layers)


def _decide(
    request: Request,
    by_name: dict[str, LayerResult],
    identity: LayerResult,
    boundary: LayerResult | None,
    resource: LayerResult | None,
    resource_matches: list[Match],
    key_request: bool,
    trust_request: bool = False,
) -> tuple[str, str | None]:
    for name in LAYER_ORDER:
        result = by_name.get(name)
        if result is not None and result.decision == EXPLICIT_DENY:
            return EXPLICIT_DENY, name
    # The enforcement code evaluates RCPs before SCPs and returns a final Deny at the
    # first of them without an applicable Allow (IAM: How AWS enforcement code logic
    # evaluates requests, "AWS Organizations RCPs", then "AWS Organizations SCPs").
    for name in ("rcp", "scp"):
        result = by_name.get(name)
        if result is not None and result.decision == IMPLICIT_DENY:
            return IMPLICIT_DENY, name

    consulted = resource is not None and resource.note != RETIRE_GRANT_NOTE
    if resource is not None and resource.note in (NO_KEY_POLICY_NOTE, NO_TRUST_POLICY_NOTE):
        consulted = True
    allow_kinds = {kind for _named, _statement, kind in resource_matches}
    boundary_ok = boundary is None or boundary.decision == ALLOWED
    identity_allows = identity.decision == ALLOWED

    # KMS key policies and role trust policies: IAM policies count only when the
    # resource's policy allows the principal's account.
    identity_effective = identity_allows
    if (key_request or trust_request) and consulted and "account" not in allow_kinds:
        identity_effective = False
        explain_trust = resource is not None and resource.note in (None, NO_ALLOW_NOTE)
        if identity_allows and explain_trust and not allow_kinds & DIRECT_KINDS:
            if trust_request:
                resource.note = NO_ROLE_TRUST_NOTE.format(account=request.principal.account)
            else:
                resource.note = NO_ACCOUNT_TRUST_NOTE.format(account=request.resource_account)
    if request.cross_account:
        if not identity_allows:
            return IMPLICIT_DENY, "identity"
        if key_request and not key_policy_consulted(request.action):
            pass  # the key policy is not consulted for RetireGrant
        elif not allow_kinds:
            return IMPLICIT_DENY, "resource_policy"
        if not boundary_ok:
            return IMPLICIT_DENY, "permissions_boundary"
        return ALLOWED, None

    resource_direct = bool(allow_kinds & DIRECT_KINDS)
    if (identity_effective or resource_direct) and boundary_ok:
        return ALLOWED, None
    if allow_kinds & SESSION_KINDS:
        return ALLOWED, None  # names the session: a boundary's implicit deny does not limit it
    if identity_effective or resource_direct:
        return IMPLICIT_DENY, "permissions_boundary"
    if identity_allows:
        return IMPLICIT_DENY, "resource_policy"  # KMS key policy does not enable IAM policies
    return IMPLICIT_DENY, "identity"
