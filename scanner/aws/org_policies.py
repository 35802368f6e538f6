"""Read one changed SCP or RCP from AWS Organizations (the management account or the
delegated administrator, never a member account): its content, or what is attached at a
target after an AttachPolicy/DetachPolicy. DescribePolicy names the policy's type:
https://docs.aws.amazon.com/organizations/latest/APIReference/API_DescribePolicy.html
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.aws.organizations import RCP, SCP, _Walker
from scanner.aws.session import AwsSessions
from scanner.model import NamedPolicy

LEVEL_KEYS = {SCP: "scps", RCP: "rcps"}


@dataclass(frozen=True)
class PolicyRead:
    policy_type: str  # SERVICE_CONTROL_POLICY, RESOURCE_CONTROL_POLICY, or another type
    key: str | None  # "scps"/"rcps" for the types that decide verdicts, else None
    policy: NamedPolicy | None  # its content (UpdatePolicy)
    attached: list[NamedPolicy] | None  # what the target holds now (Attach/DetachPolicy)


def read_policy_change(
    sessions: AwsSessions, policy_id: str, target_id: str | None = None
) -> PolicyRead:
    walker = _Walker(sessions)
    summary = walker.call("DescribePolicy", PolicyId=policy_id)["Policy"]["PolicySummary"]
    policy_type = summary.get("Type", "")
    key = LEVEL_KEYS.get(policy_type)
    if key is None:
        return PolicyRead(policy_type, None, None, None)
    if target_id is None:
        return PolicyRead(policy_type, key, walker.describe(policy_id), None)
    return PolicyRead(policy_type, key, None, walker.policies_for_target(target_id, policy_type))
