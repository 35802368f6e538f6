"""A simulator answering like iam:SimulatePrincipalPolicy, computed by vaultscan's engine.

For endpoints without an IAM policy simulator (moto, LocalStack) and the demo: it
evaluates the role's identity policies, its permissions boundary and the SCPs on the
account's path, the layers AWS's simulator evaluates for a role, over the policies the
collect stage fetched. Its answers agree with the engine by construction, so they only
cross-check the collected data, not the engine: every report says which simulator ran.
"""

from __future__ import annotations

from typing import Any

from scanner.decide import build_scenario, iam_side_decision
from scanner.model import Account, Organization, Role, SimulatorAnswer
from scanner.policy import evaluate
from scanner.request_context import RequestContext

ENGINE_SIMULATOR_NOTE = "simulator: vaultscan engine (moto has no SimulatePrincipalPolicy)"


class EngineSimulator:
    name = "sandbox-engine"

    def __init__(self, organization: Organization) -> None:
        self.organization = organization

    def simulate(
        self,
        iam_client: Any,  # unused: the role's policies were already fetched
        role: Role,
        account: Account,
        region: str,
        requests: list[tuple[str, str, RequestContext | dict]],
    ) -> list[SimulatorAnswer]:
        scps = self.organization.policy_path(account, "scp")
        answers = []
        for action, resource, context in requests:
            values = context.values if isinstance(context, RequestContext) else context
            scenario = build_scenario(
                role=role,
                account=account,
                action=action,
                resource=resource,
                context=values,
                scps=scps,
                rcps=[],
            )
            evaluation = evaluate(scenario)
            layers = {layer.layer: layer for layer in evaluation.layers}
            matched = tuple(
                ref.policy
                for name in ("identity", "permissions_boundary", "scp")
                if name in layers
                for ref in layers[name].statements
            )
            answers.append(
                SimulatorAnswer(
                    action=action,
                    resource=resource,
                    decision=iam_side_decision(evaluation),  # type: ignore[arg-type]
                    matched_statements=matched,
                    allowed_by_organizations=(
                        layers["scp"].decision == "allowed" if "scp" in layers else None
                    ),
                    allowed_by_boundary=(
                        layers["permissions_boundary"].decision == "allowed"
                        if "permissions_boundary" in layers
                        else None
                    ),
                    source="sandbox-engine",
                )
            )
        return answers
