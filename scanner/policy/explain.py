"""Answers to scenarios as data (the spec's output object) and as text for a person:
the decision first, then each layer with the statements that decided it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scanner.policy.authorizers import authorizer_for
from scanner.policy.evaluate import evaluate
from scanner.policy.result import Evaluation, LayerResult
from scanner.policy.scenario import Scenario, ScenarioError

LAYER_TITLES = {
    "scp": "Service control policies",
    "rcp": "Resource control policies",
    "permissions_boundary": "Permissions boundary",
    "identity": "Identity policies",
    "resource_policy": "Resource policy",
}


@dataclass
class Answer:
    scenario: Scenario
    evaluation: Evaluation

    @property
    def name(self) -> str:
        return self.scenario.name or self.scenario.origin

    @property
    def agrees(self) -> bool | None:
        """None when the scenario states no expected decision."""
        if self.scenario.expected is None:
            return None
        if self.evaluation.decision != self.scenario.expected:
            return False
        if self.scenario.states_deciding_layer:
            return self.evaluation.deciding_layer == self.scenario.expected_deciding_layer
        return True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, **self.evaluation.to_dict()}
        if self.scenario.expected is not None:
            out["expected"] = self.scenario.expected
            if self.scenario.states_deciding_layer:
                out["expected_deciding_layer"] = self.scenario.expected_deciding_layer
            out["agrees"] = self.agrees
        return out


def answer(item: Scenario | ScenarioError) -> Answer | ScenarioError:
    if isinstance(item, ScenarioError):
        return item
    return Answer(item, evaluate(item))


def error_to_dict(error: ScenarioError) -> dict[str, Any]:
    return {"name": error.origin, **error.to_dict()}


def render_answer(result: Answer) -> str:
    evaluation = result.evaluation
    scenario = result.scenario
    lines = [f"{result.name}"]
    if scenario.name and scenario.origin != "<scenario>":
        lines[0] += f"  ({scenario.origin})"
    decided = f" by {evaluation.deciding_layer}" if evaluation.deciding_layer else ""
    lines.append(f"  decision: {evaluation.decision}{decided}")
    lines.append(
        f"  request:  {scenario.principal_arn} -> {scenario.action} on {scenario.resource}"
    )
    agrees = result.agrees
    if agrees is not None:
        wanted = scenario.expected or ""
        if scenario.states_deciding_layer and scenario.expected_deciding_layer:
            wanted += f" by {scenario.expected_deciding_layer}"
        verdict = "agrees" if agrees else "DISAGREES"
        lines.append(f"  expected: {wanted} ({verdict})")
    authorizer = authorizer_for(scenario.action, scenario.resource)
    resource_title = authorizer.title if authorizer.requires_account_trust else None
    if scenario.key_manager is not None:
        lines.append(f"  key manager: {scenario.key_manager}")
    for layer in evaluation.layers:
        lines.extend(_render_layer(layer, resource_title))
    return "\n".join(lines)


def _render_layer(layer: LayerResult, resource_title: str | None) -> list[str]:
    title = LAYER_TITLES.get(layer.layer, layer.layer)
    if resource_title and layer.layer == "resource_policy":
        title = resource_title
    lines = [f"  {title} [{layer.layer}]: {layer.decision}"]
    for ref in layer.statements:
        sid = f' Sid "{ref.sid}"' if ref.sid else ""
        lines.append(f"    {ref.effect:<5} {ref.policy}, statement #{ref.index}{sid}")
    if layer.note:
        lines.append(f"    {layer.note}")
    return lines


def render_error(error: ScenarioError) -> str:
    where = f": field {error.field}" if error.field else ""
    return f"{error.origin}: cannot read scenario{where}: {error.message}"
