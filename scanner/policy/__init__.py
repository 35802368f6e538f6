"""vaultscan's authorization engine: AWS's documented policy-evaluation logic over SCPs,
RCPs, permissions boundaries, identity policies and resource (KMS key) policies, with
explanations naming the statements that decided each layer.

Imports nothing of the rest of scanner: the scanner depends on the engine, never the
other way round."""

from scanner.policy.evaluate import evaluate
from scanner.policy.result import (
    AccountTrust,
    ConditionRef,
    Evaluation,
    LayerResult,
    LevelResult,
    StatementMiss,
    StatementRef,
)
from scanner.policy.scenario import Scenario, ScenarioError, load_scenarios
from scanner.policy.vocabulary import LAYER_ORDER, Decision, KeyManager, Layer, Reason

__all__ = [
    "LAYER_ORDER",
    "AccountTrust",
    "ConditionRef",
    "Decision",
    "Evaluation",
    "KeyManager",
    "Layer",
    "LayerResult",
    "LevelResult",
    "Reason",
    "Scenario",
    "ScenarioError",
    "StatementMiss",
    "StatementRef",
    "evaluate",
    "load_scenarios",
]
