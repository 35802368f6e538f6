"""A simulator answering like iam:SimulatePrincipalPolicy, computed by vaultscan's engine.

For endpoints without an IAM policy simulator (moto, LocalStack) and the demo: it
evaluates the role's identity policies, its permissions boundary and the SCPs on the
account's path, the layers AWS's simulator evaluates for a role, over the policies the
collect stage fetched. Its answers agree with the engine by construction, so they only
cross-check the collected data, not the engine: every report says which simulator ran.
"""

from __future__ import annotations

from typing import Any

from scanner.decide import iam_side_decision, level_labels
from scanner.decide.scenarios import OrgPath, ask, policies_scenario
from scanner.model import Account, Organization, Role, SimulatorAnswer
from scanner.policy import Scenario, evaluate
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
        scenario = _role_scenario(self.organization, role, account)
        answers = []
        for action, resource, context in requests:
            if isinstance(context, RequestContext):
                values, parts = context.values, context.parts
            else:
                values, parts = context, ()
            # each question shares the compiled policies (and the normalized context
            # pieces) of the one before, as decide's scenarios do
            scenario = ask(scenario, account, action, resource, values, None, context_parts=parts)
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


def _role_scenario(organization: Organization, role: Role, account: Account) -> Scenario:
    """The layers AWS's simulator evaluates for `role`: its identity policies, its
    permissions boundary and the account's SCPs (no RCPs, no resource policy)."""
    labels = level_labels(account)
    scps = OrgPath(organization.policy_path(account, "scp"), labels)
    return policies_scenario(role, account, scps, OrgPath([], labels), None)
