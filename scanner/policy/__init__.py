"""vaultscan's authorization engine: AWS's documented policy-evaluation logic over SCPs,
RCPs, permissions boundaries, identity policies and resource (KMS key) policies, with
explanations naming the statements that decided each layer."""

from scanner.policy.evaluate import Evaluation, LayerResult, StatementRef, evaluate
from scanner.policy.scenario import Scenario, ScenarioError, load_scenarios

__all__ = [
    "Evaluation",
    "LayerResult",
    "Scenario",
    "ScenarioError",
    "StatementRef",
    "evaluate",
    "load_scenarios",
]
