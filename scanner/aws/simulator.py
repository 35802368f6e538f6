"""The IAM policy simulator cross-check: what AWS itself says for each required
(action, resource, context). `AwsSimulator` asks iam:SimulatePrincipalPolicy; other
implementations (the sandbox engine) answer the same Protocol."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from scanner.aws.ratelimit import Throttle
from scanner.model import Account, Decision, Role, SimulatorAnswer
from scanner.request_context import RequestContext

log = logging.getLogger(__name__)

# (action, resource ARN, request context): the context is the one the engine gets
# (scanner.request_context); a plain mapping is typed from its values
SimulationRequest = tuple[str, str, "RequestContext | dict"]
DECISIONS: frozenset[str] = frozenset({"allowed", "explicitDeny", "implicitDeny"})


class Simulator(Protocol):
    name: str

    def simulate(
        self,
        iam_client: Any,
        role: Role,
        account: Account,
        region: str,
        requests: list[SimulationRequest],
    ) -> list[SimulatorAnswer]:
        """One answer per request, in request order."""
        ...


class SimulatorError(Exception):
    """The simulator answered something that cannot be mapped to a decision."""


def context_entry(key: str, value: object) -> dict[str, Any]:
    """A SimulatePrincipalPolicy ContextEntry with the ContextKeyType the value needs."""
    values = value if isinstance(value, list | tuple) else [value]
    if not values:
        raise ValueError(f"context key {key}: empty list has no type")
    kind = _value_type(values[0])
    if any(_value_type(item) != kind for item in values):
        raise ValueError(f"context key {key}: mixed value types in {values!r}")
    if isinstance(value, list | tuple):
        kind += "List"
    return {
        "ContextKeyName": key,
        "ContextKeyType": kind,
        "ContextKeyValues": [_value_text(item) for item in values],
    }


def _value_type(value: object) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "boolean"
    if isinstance(value, int | float):
        return "numeric"
    if isinstance(value, str) and _is_ip(value):
        return "ip"
    return "string"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return any(char in text for char in ".:")


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _values(context: RequestContext | dict) -> dict:
    return context.values if isinstance(context, RequestContext) else context


def _context_key(context: RequestContext | dict) -> tuple:
    return tuple(sorted((key, repr(value)) for key, value in _values(context).items()))


def context_entries(context: RequestContext | dict) -> list[dict[str, Any]]:
    """ContextEntries carrying every key of the context, each with its ContextKeyType."""
    if isinstance(context, RequestContext):
        return context.context_entries()
    return [context_entry(key, value) for key, value in context.items()]


class AwsSimulator:
    """iam:SimulatePrincipalPolicy for the role's own policies, boundary and SCPs.

    The simulator evaluates every action against every resource of a call and takes one
    context for the whole call, so requests are grouped by context (e.g. the kms:CreateGrant
    context carries kms:GrantIsForAWSResource, the others do not) and each group is one
    call (plus pages); only the (action, resource) pairs that were asked for are kept.
    """

    name = "aws"

    def __init__(self, throttle: Throttle | None = None, page_size: int = 1000) -> None:
        self.throttle = throttle or Throttle()
        self.page_size = page_size

    def simulate(
        self,
        iam_client: Any,
        role: Role,
        account: Account,
        region: str,
        requests: list[SimulationRequest],
    ) -> list[SimulatorAnswer]:
        groups: dict[tuple, list[int]] = {}
        for index, (_action, _resource, context) in enumerate(requests):
            groups.setdefault(_context_key(context), []).append(index)
        answers: dict[int, SimulatorAnswer] = {}
        for indexes in groups.values():
            group = [requests[index] for index in indexes]
            found = self._simulate_group(iam_client, role, group)
            for index in indexes:
                action, resource, _context = requests[index]
                answer = found.get((action.lower(), resource))
                if answer is None:
                    raise SimulatorError(
                        f"simulator gave no answer for {action} on {resource} "
                        f"(role {role.arn}, account {account.id}, {region})"
                    )
                answers[index] = answer
        return [answers[index] for index in range(len(requests))]

    def _simulate_group(
        self, iam_client: Any, role: Role, group: Sequence[SimulationRequest]
    ) -> dict[tuple[str, str], SimulatorAnswer]:
        actions = list(dict.fromkeys(action for action, _, _ in group))
        resources = list(dict.fromkeys(resource for _, resource, _ in group))
        context = group[0][2]
        params: dict[str, Any] = {
            "PolicySourceArn": role.arn,
            "ActionNames": actions,
            "ResourceArns": resources,
            "MaxItems": self.page_size,
        }
        if _values(context):
            params["ContextEntries"] = context_entries(context)
        found: dict[tuple[str, str], SimulatorAnswer] = {}
        pages = self.throttle.pages(
            iam_client, "SimulatePrincipalPolicy", token=("Marker", "Marker"), **params
        )
        for page in pages:
            for result in page.get("EvaluationResults", []):
                for answer in _answers(result):
                    found[(answer.action.lower(), answer.resource)] = answer
        return found


def _decision(value: str | None) -> Decision:
    if value not in DECISIONS:
        raise SimulatorError(f"unknown simulator decision {value!r}")
    return value  # type: ignore[return-value]


def _statement_ids(statements: list[dict[str, Any]] | None) -> tuple[str, ...]:
    return tuple(item.get("SourcePolicyId", "") for item in statements or [])


def _boundary(detail: dict[str, Any] | None) -> bool | None:
    if not detail or "AllowedByPermissionsBoundary" not in detail:
        return None
    return bool(detail["AllowedByPermissionsBoundary"])


def _missing(*items: dict[str, Any]) -> tuple[str, ...]:
    """MissingContextValues: "A list of context keys that are required by the included
    input policies but that were not provided by one of the input parameters"
    (IAM API Reference: EvaluationResult, ResourceSpecificResult)."""
    keys: dict[str, None] = {}
    for item in items:
        keys.update(dict.fromkeys(item.get("MissingContextValues") or []))
    return tuple(keys)


def _answers(result: dict[str, Any]) -> list[SimulatorAnswer]:
    """Per-resource answers of one EvaluationResult.

    The simulator now returns one EvaluationResult per action with the per-resource
    decisions in ResourceSpecificResults (the top level is the most restrictive of them);
    it used to return one result per (action, resource). Both shapes are read.
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_EvaluationResult.html
    """
    action = result["EvalActionName"]
    organizations = result.get("OrganizationsDecisionDetail") or {}
    by_org = organizations.get("AllowedByOrganizations")
    by_org = None if by_org is None else bool(by_org)
    specific = result.get("ResourceSpecificResults") or []
    if specific:
        return [
            SimulatorAnswer(
                action=action,
                resource=item["EvalResourceName"],
                decision=_decision(item.get("EvalResourceDecision")),
                matched_statements=_statement_ids(item.get("MatchedStatements")),
                allowed_by_organizations=by_org,
                allowed_by_boundary=_boundary(
                    item.get("PermissionsBoundaryDecisionDetail")
                    or result.get("PermissionsBoundaryDecisionDetail")
                ),
                source="aws",
                # the resource's own list when given (the top level is the union)
                missing_context=_missing(item if "MissingContextValues" in item else result),
            )
            for item in specific
        ]
    return [
        SimulatorAnswer(
            action=action,
            resource=result.get("EvalResourceName", "*"),
            decision=_decision(result.get("EvalDecision")),
            matched_statements=_statement_ids(result.get("MatchedStatements")),
            allowed_by_organizations=by_org,
            allowed_by_boundary=_boundary(result.get("PermissionsBoundaryDecisionDetail")),
            source="aws",
            missing_context=_missing(result),
        )
    ]
