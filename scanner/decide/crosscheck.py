"""The cross-check with AWS's IAM policy simulator: which of its answers belongs to a
request, and what the engine says over the layers the simulator sees."""

from __future__ import annotations

from scanner.model import SimulatorAnswer
from scanner.policy import Decision, Evaluation, Layer

# the layers AWS's simulator evaluates for a role (not RCPs, not the key policy)
SIMULATOR_LAYERS = (Layer.SCP, Layer.PERMISSIONS_BOUNDARY, Layer.IDENTITY)


def iam_side_decision(evaluation: Evaluation) -> Decision:
    """The engine's decision over the layers AWS's simulator evaluates for a role:
    identity policies, permissions boundary and SCPs."""
    layers = {layer.layer: layer for layer in evaluation.layers}
    seen = [layers[name] for name in SIMULATOR_LAYERS if name in layers]
    if any(layer.decision is Decision.EXPLICIT_DENY for layer in seen):
        return Decision.EXPLICIT_DENY
    if any(layer.decision is not Decision.ALLOWED for layer in seen):
        return Decision.IMPLICIT_DENY
    return Decision.ALLOWED if Layer.IDENTITY in layers else Decision.IMPLICIT_DENY


def answer_for(
    answers: list[SimulatorAnswer], action: str, resource: str
) -> SimulatorAnswer | None:
    for answer in answers:
        if answer.action.lower() == action.lower() and answer.resource == resource:
            return answer
    return None
