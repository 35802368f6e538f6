"""The sandbox's hand-written expectations applied to a scan's verdicts: every check of
every designated role and key, the failing ones at the expected layer, policy, statement
and fix. Shared by the engine-simulator and the AWS-like-simulator scans."""

from __future__ import annotations

from scanner.decide import KEY_STATE_CHECK
from scanner.model import CheckResult
from scanner.sandbox import SandboxAccount, SandboxOrg

VAULT_ACTIONS = {
    "backup:CreateBackupVault",
    "backup-storage:MountCapsule",
    "kms:CreateGrant",
    "kms:DescribeKey",
    "kms:RetireGrant",
    "kms:Decrypt",
    "kms:GenerateDataKey",
}
KEY_ACTIONS = {action for action in VAULT_ACTIONS if action.startswith("kms:")}


def expected_checks(account: SandboxAccount, central_label: str | None) -> set[str]:
    """Every check of one role in one region: the vault actions on the configured key,
    and the key actions on the central key when a vault of the account uses it."""
    checks = set(VAULT_ACTIONS)
    if central_label:
        checks |= {f"{action} ({central_label})" for action in KEY_ACTIONS}
    return checks


def central_label(sandbox: SandboxOrg, account: SandboxAccount, results) -> str | None:
    labels = {
        r.check.split(" (", 1)[1].rstrip(")")
        for r in results
        if r.resource in sandbox.central_key_arns.values() and " (" in r.check
    }
    assert len(labels) <= 1, (account.name, labels)
    return labels.pop() if labels else None


def assert_account_verdicts(
    sandbox: SandboxOrg, name: str, results: list[CheckResult], simulator_source: str
) -> None:
    account = sandbox.by_name(name)
    from scanner.sandbox_data.layout import ACCOUNT_PLANS

    plan = next(plan for plan in ACCOUNT_PLANS if plan.name == name)
    label = central_label(sandbox, account, results)
    assert (label is not None) == plan.central_vault, name
    assert len(account.roles) == 1 + len(plan.extra_roles)
    for region in sandbox.regions:
        in_region = [r for r in results if r.region == region]
        key_states = {r.check for r in in_region if r.check.startswith(KEY_STATE_CHECK)}
        expected_states = {KEY_STATE_CHECK} | ({f"{KEY_STATE_CHECK} ({label})"} if label else set())
        assert key_states == expected_states, (name, region)
        failing_states = {
            r.check for r in in_region if r.check.startswith(KEY_STATE_CHECK) and r.status != "pass"
        }
        assert failing_states == account.key_state_failing(), (name, region)
        for role in account.roles:
            mine = [r for r in in_region if r.role_arn == role.arn]
            assert {r.check for r in mine} == expected_checks(account, label), (name, role.name)
            failing = {r.check for r in mine if r.status != "pass"}
            assert failing == account.role_failing(role.arn), (name, role.name, region, failing)
            for result in mine:
                _assert_one(result, role.expectation, simulator_source)
        for result in in_region:
            if result.check.startswith(KEY_STATE_CHECK) and result.status != "pass":
                assert result.remediation.kind == account.expectation.fix_kind
                assert result.resource == account.key_arns[region]


def _assert_one(result: CheckResult, expectation, simulator_source: str) -> None:
    assert result.simulator_source == simulator_source
    # every disagreement with the simulator is explained (by keys it reported missing)
    assert result.disagreement is False, result.message
    assert result.absent_keys == (), (result.check, result.message)
    if result.status == "pass":
        assert result.remediation is None
        return
    assert result.status == "fail", result.message
    assert result.message
    assert result.remediation.kind == expectation.fix_kind, result.message
    assert result.deciding_layer == expectation.layer, result.message
    assert result.decision == expectation.decision
    if expectation.policy_contains:
        assert expectation.policy_contains in (result.policy or ""), result.policy
    assert result.statement == expectation.statement
