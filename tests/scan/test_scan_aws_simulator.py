"""The sandbox scanned with vaultscan's real AwsSimulator client against a stand-in that
behaves like AWS's iam:SimulatePrincipalPolicy (tests/aws_like_simulator.py): it sees only
the ContextEntries vaultscan sends and reports the keys it lacks. Every verdict must
still match the hand-written expectations, with no unexplained disagreement; and the
stand-in must really answer differently when it is not sent the whole context."""

from __future__ import annotations

from collections import Counter

import pytest
from aws_like_simulator import AwsLikeSimulator
from sandbox_checks import assert_account_verdicts

from scanner.aws.collect import collect_account
from scanner.aws.organizations import discover
from scanner.aws.simulator import AwsSimulator
from scanner.model import CheckResult, Role
from scanner.profiles import load_profiles
from scanner.sandbox_data.layout import ACCOUNT_PLANS


@pytest.fixture(scope="module")
def stand_in(seeded) -> AwsLikeSimulator:
    return AwsLikeSimulator(seeded.session)


@pytest.fixture(scope="module")
def verdicts(seeded, stand_in) -> dict[str, list[CheckResult]]:
    settings = seeded.settings.model_copy(update={"simulator": "aws"})
    sessions = seeded.sessions(settings)
    organization = discover(sessions, settings)
    profiles = load_profiles(settings)
    out = {}
    for account in organization.accounts:
        collection = collect_account(
            sessions, settings, profiles, account, organization, AwsSimulator()
        )
        assert collection.error is None, collection.error
        name = seeded.sandbox.account(account.id).name
        out[name] = _decide(organization, collection, profiles, settings)
    return out


def _decide(organization, collection, profiles, settings):
    from scanner.decide import decide_account

    return decide_account(organization, collection, profiles, regions=list(settings.regions))


@pytest.mark.parametrize("name", [plan.name for plan in ACCOUNT_PLANS])
def test_each_account_gets_its_expected_verdict_through_the_aws_like_simulator(
    seeded, verdicts, name
):
    assert_account_verdicts(seeded.sandbox, name, verdicts[name], "aws")


def test_the_simulator_answered_every_role_check(verdicts, stand_in):
    results = [r for rows in verdicts.values() for r in rows if r.role_arn]
    assert len(results) > 250
    assert all(r.simulator_decision is not None for r in results)
    assert sum(r.disagreement for r in results) == 0
    assert len(stand_in.calls) > 100
    # it was asked the whole question: principal, organization and forward-access keys
    sent = Counter(
        entry["ContextKeyName"] for call in stand_in.calls for entry in call["ContextEntries"]
    )
    for key in (
        "aws:PrincipalArn",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalTag/vaultscan:designated",
        "aws:ViaAWSService",
        "aws:CurrentTime",
    ):
        assert sent[key] == len(stand_in.calls), key
    assert sent["kms:ViaService"] > 0 and sent["aws:ResourceTag/purpose"] > 0


def test_without_the_whole_context_the_stand_in_denies_like_aws(seeded, stand_in):
    """The issue this guards against: with only the profile's keys, AWS's simulator
    applies an SCP exception by aws:PrincipalArn as if the role were not exempt."""
    account = seeded.sandbox.by_cause("scp-exception-by-principal-arn")
    role = Role(arn=account.role_arn, name="BackupOperator", path="/backup/")
    vault = f"arn:aws:backup:us-east-1:{account.account_id}:backup-vault:*"
    sessions = seeded.sessions()
    iam = sessions.client("iam", "us-east-1", sessions.assume_member(account.account_id))
    simulator = AwsSimulator()
    [stripped] = simulator.simulate(
        iam,
        role,
        None,
        "us-east-1",
        [("backup:CreateBackupVault", vault, {"aws:RequestedRegion": "us-east-1"})],
    )
    assert stripped.decision == "explicitDeny"
    assert stripped.missing_context == ("aws:PrincipalArn",)
    [whole] = simulator.simulate(
        iam,
        role,
        None,
        "us-east-1",
        [
            (
                "backup:CreateBackupVault",
                vault,
                {"aws:RequestedRegion": "us-east-1", "aws:PrincipalArn": account.role_arn},
            )
        ],
    )
    assert whole.decision == "allowed" and whole.missing_context == ()
