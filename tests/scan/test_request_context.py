"""The request-context builder: every key AWS would put in the request, typed for the
simulator; the keys a verdict rests on without knowing them; decide's use of both, of
the simulator's MissingContextValues, and of keys owned by another account."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

import pytest

from scanner.aws.collect import simulation_requests
from scanner.context_gaps import engine_context, keys_the_verdict_rests_on
from scanner.decide import decide_account
from scanner.model import (
    Account,
    AccountCollection,
    KmsKey,
    NamedPolicy,
    Organization,
    OrgUnit,
    Role,
    SimulatorAnswer,
)
from scanner.policy.context import build_request
from scanner.profiles import Profile, Requirement, available_profiles
from scanner.request_context import ContextBuilder, Question, build_context, question_for

ORG_ID = "o-a1b2c3d4e5"
ROOT = OrgUnit("r-ab12", "Root")
WORKLOADS = OrgUnit("ou-ab12-11111111", "Workloads")
SECURITY = OrgUnit("ou-ab12-22222222", "Security")
ACCOUNT = Account("111122223333", "prod-app", ou_path=(ROOT, WORKLOADS))
OWNER = Account("444455556666", "security-keys", ou_path=(ROOT, SECURITY))
REGION = "eu-west-1"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT.id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CENTRAL_ARN = f"arn:aws:kms:{REGION}:{OWNER.id}:key/9999abcd-12ab-34cd-56ef-1234567890ab"
ROLE = Role(
    arn=f"arn:aws:iam::{ACCOUNT.id}:role/backup/BackupOperator",
    name="BackupOperator",
    path="/backup/",
    tags={"team": "backup", "env": "prod"},
    role_id="AROAEXAMPLEID1234",
)
SCANNED = datetime(2026, 12, 5, 3, 30, 12, 345, tzinfo=UTC)
CREATE_GRANT = Requirement(
    "kms:CreateGrant",
    "${KeyArn}",
    {"kms:ViaService": "backup.${Region}.${DnsSuffix}", "kms:GrantIsForAWSResource": True},
)
VAULT = Requirement(
    "backup:CreateBackupVault", "arn:${Partition}:backup:${Region}:${Account}:backup-vault:*"
)
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
RCP_ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}],
}


def _doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _org(**changes) -> Organization:
    targets = [ROOT.id, WORKLOADS.id, SECURITY.id, ACCOUNT.id, OWNER.id]
    values = dict(
        management_account_id="999999999999",
        accounts=[ACCOUNT],
        scps={t: [NamedPolicy("p-FullAWSAccess (FullAWSAccess)", ALLOW_ALL)] for t in targets},
        rcps={
            t: [NamedPolicy("p-RCPFullAWSAccess (RCPFullAWSAccess)", RCP_ALLOW_ALL)]
            for t in targets
        },
        rcps_enabled=True,
        id=ORG_ID,
        members={ACCOUNT.id: ACCOUNT, OWNER.id: OWNER},
    )
    values.update(changes)
    return Organization(**values)


def _key(arn: str = KEY_ARN, policy: dict | None = None, **changes) -> KmsKey:
    owner = arn.split(":")[4]
    values = dict(
        arn=arn,
        key_id=arn.rsplit("/", 1)[-1],
        region=REGION,
        key_policy=policy
        or _doc(
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{owner}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ),
        tags={"purpose": "backup-vault"},
        sources=["configured"],
    )
    values.update(changes)
    return KmsKey(**values)


def _context(requirement: Requirement, key: KmsKey | None = None, org: Organization | None = None):
    return question_for(
        organization=org or _org(),
        account=ACCOUNT,
        role=ROLE,
        region=REGION,
        requirement=requirement,
        key=key,
        partition="aws",
        scanned_at=SCANNED,
    )


def test_context_of_a_kms_call_backup_makes_for_the_role():
    resource, context = _context(CREATE_GRANT, _key())
    assert resource == KEY_ARN
    assert context.values == {
        "aws:PrincipalArn": ROLE.arn,
        "aws:PrincipalAccount": ACCOUNT.id,
        "aws:PrincipalType": "AssumedRole",
        "aws:PrincipalIsAWSService": False,
        "aws:PrincipalOrgID": ORG_ID,
        "aws:PrincipalOrgPaths": [f"{ORG_ID}/r-ab12/ou-ab12-11111111/"],
        "aws:PrincipalTag/env": "prod",
        "aws:PrincipalTag/team": "backup",
        "aws:userid": "AROAEXAMPLEID1234:vaultscan-check",
        "aws:RequestedRegion": REGION,
        "aws:SecureTransport": True,
        "aws:CurrentTime": "2026-12-05T03:30:12Z",
        "aws:EpochTime": int(SCANNED.replace(microsecond=0).timestamp()),
        "aws:ResourceAccount": ACCOUNT.id,
        "aws:ResourceOrgID": ORG_ID,
        "aws:ResourceOrgPaths": [f"{ORG_ID}/r-ab12/ou-ab12-11111111/"],
        "aws:ResourceTag/purpose": "backup-vault",
        "kms:CallerAccount": ACCOUNT.id,
        "kms:ViaService": f"backup.{REGION}.amazonaws.com",
        "kms:GrantIsForAWSResource": True,
        # a forward access session of AWS Backup: not a service that sets aws:CalledVia
        "aws:ViaAWSService": True,
    }
    assert "aws:calledvia" in context.absent_by_rule
    types = {e["ContextKeyName"]: e["ContextKeyType"] for e in context.context_entries()}
    assert types["aws:PrincipalOrgPaths"] == "stringList"
    assert types["aws:ViaAWSService"] == "boolean"
    assert types["aws:CurrentTime"] == "date"
    assert types["aws:EpochTime"] == "numeric"
    assert types["aws:PrincipalArn"] == "string"


def test_direct_call_and_a_key_in_another_account():
    resource, context = _context(VAULT)
    assert resource.startswith(f"arn:aws:backup:{REGION}:{ACCOUNT.id}:backup-vault:")
    assert context.values["aws:ViaAWSService"] is False
    assert "kms:CallerAccount" not in context.values
    assert "aws:ResourceTag/purpose" not in context.values

    _, central = _context(CREATE_GRANT, _key(CENTRAL_ARN))
    assert central.values["aws:ResourceAccount"] == OWNER.id
    assert central.values["aws:ResourceOrgPaths"] == [f"{ORG_ID}/r-ab12/ou-ab12-22222222/"]
    assert central.values["kms:CallerAccount"] == ACCOUNT.id
    assert central.values["aws:PrincipalAccount"] == ACCOUNT.id


def test_called_via_only_for_services_documented_to_set_it():
    question = Question(
        organization=_org(),
        account=ACCOUNT,
        role=ROLE,
        region=REGION,
        action="kms:Decrypt",
        resource=KEY_ARN,
        profile_context={"kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"},
    )
    values = build_context(question).values
    assert values["aws:CalledVia"] == ["dynamodb.amazonaws.com"]
    assert values["aws:CalledViaFirst"] == values["aws:CalledViaLast"] == "dynamodb.amazonaws.com"


# profile keys that repeat the role's own keys, some in other spellings
OVERRIDING = Requirement(
    "kms:Decrypt",
    "${KeyArn}",
    {
        "AWS:requestedregion": "${Region}",
        "aws:PrincipalTag/team": "ops",
        "aws:userid": "AROAOTHER:session",
        "aws:CalledVia": ["backup.amazonaws.com"],
        "kms:ViaService": "dynamodb.${Region}.amazonaws.com",
    },
)


def test_account_builder_gives_question_for_contexts_key_for_key():
    bare = Role(arn=f"arn:aws:iam::{ACCOUNT.id}:role/Plain", name="Plain")
    builtin = [req for profile in available_profiles().values() for req in profile.requirements]
    requirements = [CREATE_GRANT, VAULT, OVERRIDING, *builtin]
    keys = [_key(), _key(CENTRAL_ARN, tags={})]
    compared = 0
    for org in (_org(), _org(id="", members={})):
        builder = ContextBuilder(org, ACCOUNT, "aws", SCANNED)  # one per account, reused
        for region in (REGION, "us-east-1"):
            for role in (ROLE, bare):
                for requirement in requirements:
                    for key in keys if requirement.needs_key else [None, *keys]:
                        expected = question_for(
                            organization=org,
                            account=ACCOUNT,
                            role=role,
                            region=region,
                            requirement=requirement,
                            key=key,
                            partition="aws",
                            scanned_at=SCANNED,
                        )
                        resource, context = builder.question_for(role, region, requirement, key)
                        assert resource == expected[0]
                        assert context == expected[1]
                        assert list(context.values.items()) == list(expected[1].values.items())
                        # the engine's request from the shared pieces is the whole one's
                        ask = (role.arn, ACCOUNT.id, requirement.action, resource, ACCOUNT.id)
                        whole = build_request(*ask, context.values, True)
                        pieced = build_request(*ask, context.values, True, parts=context.parts)
                        assert context.parts
                        assert list(pieced.context.items()) == list(whole.context.items())
                        compared += 1
    assert compared > 100


def test_no_org_keys_outside_an_organization():
    _, context = _context(VAULT, org=_org(id="", members={}))
    assert "aws:PrincipalOrgID" not in context.values
    assert "aws:ResourceOrgID" not in context.values


def test_verdict_rests_only_on_statements_whose_known_conditions_match():
    perimeter = _doc(
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "NotIpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"},
                "Bool": {"aws:ViaAWSService": "false"},
            },
        }
    )
    _, direct = _context(VAULT)
    _, via_backup = _context(CREATE_GRANT, _key())
    assert keys_the_verdict_rests_on(
        [perimeter],
        VAULT.action,
        "arn:aws:backup:eu-west-1:1:backup-vault:x",
        engine_context(direct.values),
        absent_by_rule=direct.absent_by_rule,
    ) == ["aws:sourceip"]
    # AWS Backup's own call: aws:ViaAWSService is true, so the IP does not matter
    assert (
        keys_the_verdict_rests_on(
            [perimeter],
            CREATE_GRANT.action,
            KEY_ARN,
            engine_context(via_backup.values),
            absent_by_rule=via_backup.absent_by_rule,
        )
        == []
    )
    # keys absent by AWS's rules are not unknown
    called_via = _doc(
        {
            "Effect": "Deny",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {"ForAnyValue:StringEquals": {"aws:CalledVia": "backup.amazonaws.com"}},
        }
    )
    assert (
        keys_the_verdict_rests_on(
            [called_via],
            CREATE_GRANT.action,
            KEY_ARN,
            engine_context(via_backup.values),
            absent_by_rule=via_backup.absent_by_rule,
        )
        == []
    )


def _identity() -> NamedPolicy:
    return NamedPolicy(
        "inline:BackupOperator/Vaults",
        _doc(
            {
                "Effect": "Allow",
                "Action": ["backup:CreateBackupVault", "kms:CreateGrant"],
                "Resource": "*",
            }
        ),
    )


def _decide(org: Organization, key: KmsKey, answers=None, role: Role | None = None):
    role = role or Role(**{**ROLE.__dict__, "inline_policies": [_identity()]})
    collection = AccountCollection(
        account=ACCOUNT, roles=[role], keys={REGION: [key]}, scanned_at=SCANNED
    )
    if answers is not None:
        collection.simulations[(role.arn, REGION)] = answers
    profile = Profile("t", "", [VAULT, CREATE_GRANT])
    return {r.check.split(" (")[0]: r for r in decide_account(org, collection, [profile])}


def test_collect_and_decide_share_the_account_request_contexts():
    org, key = _org(), _key()
    role = Role(**{**ROLE.__dict__, "inline_policies": [_identity()]})
    profile = Profile("t", "", [VAULT, CREATE_GRANT])
    contexts = ContextBuilder(org, ACCOUNT, "aws", SCANNED)
    facts = {"organization": org, "role": role, "scanned_at": SCANNED}
    shared = simulation_requests(
        [profile], "aws", REGION, ACCOUNT, [key], contexts=contexts, **facts
    )
    # the simulator receives exactly the contexts it received without a shared builder
    assert shared == simulation_requests([profile], "aws", REGION, ACCOUNT, [key], **facts)
    built = (len(contexts._shared), len(contexts._requested))
    collection = AccountCollection(
        account=ACCOUNT, roles=[role], keys={REGION: [key]}, scanned_at=SCANNED
    )
    reused = decide_account(org, collection, [profile], contexts=contexts)
    assert (len(contexts._shared), len(contexts._requested)) == built  # nothing built again
    alone = decide_account(org, collection, [profile])
    assert [asdict(result) for result in reused] == [asdict(result) for result in alone]
    unused = ContextBuilder(org, ACCOUNT, "aws", SCANNED)
    decide_account(org, collection, [profile], contexts=unused)
    assert (len(unused._shared), len(unused._requested)) == built  # decide built them there
    # another account's contexts are refused rather than used
    with pytest.raises(ValueError, match=ACCOUNT.id):
        decide_account(
            org, collection, [profile], contexts=ContextBuilder(org, OWNER, "aws", SCANNED)
        )


def test_perimeter_rcp_on_principal_org_id_passes_for_organization_roles():
    perimeter = NamedPolicy(
        "p-perimeter (KeyPerimeter)",
        _doc(
            {
                "Sid": "EnforceOrgIdentities",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:*",
                "Resource": "*",
                "Condition": {
                    "StringNotEqualsIfExists": {"aws:PrincipalOrgID": ORG_ID},
                    "BoolIfExists": {"aws:PrincipalIsAWSService": "false"},
                },
            }
        ),
    )
    org = _org()
    org.rcps[ROOT.id] = [*org.rcps[ROOT.id], perimeter]
    results = _decide(org, _key())
    assert results["kms:CreateGrant"].status == "pass", results["kms:CreateGrant"].message
    assert results["kms:CreateGrant"].absent_keys == ()
    assert results["kms:CreateGrant"].confidence["level"] == "full-context"


def test_simulator_answer_resting_on_keys_not_sent_does_not_fail_the_check():
    vault = f"arn:aws:backup:{REGION}:{ACCOUNT.id}:backup-vault:*"
    answers = [
        SimulatorAnswer(
            "backup:CreateBackupVault", vault, "explicitDeny", missing_context=("aws:SourceIp",)
        ),
        SimulatorAnswer("kms:CreateGrant", KEY_ARN, "explicitDeny"),
    ]
    results = _decide(_org(), _key(), answers)
    vault_result = results["backup:CreateBackupVault"]
    assert vault_result.status == "pass"
    assert vault_result.disagreement is False
    assert vault_result.simulator_decision == "explicitDeny"
    assert vault_result.simulator_missing == ("aws:SourceIp",)
    assert "aws:SourceIp" in vault_result.message
    assert vault_result.confidence["simulator_missing_context"] == ["aws:SourceIp"]
    # a deny that rests on nothing missing still fails the check
    grant = results["kms:CreateGrant"]
    assert grant.status == "fail" and grant.disagreement is True


def test_verdict_that_turns_on_an_unknowable_key_says_which():
    mfa = NamedPolicy(
        "inline:BackupOperator/RequireMfa",
        _doc(
            {
                "Sid": "RequireMfa",
                "Effect": "Deny",
                "Action": "backup:*",
                "Resource": "*",
                "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
            }
        ),
    )
    role = Role(**{**ROLE.__dict__, "inline_policies": [_identity(), mfa]})
    result = _decide(_org(), _key(), role=role)["backup:CreateBackupVault"]
    assert result.status == "fail" and result.deciding_layer == "identity"
    assert result.absent_keys == ("aws:multifactorauthpresent",)
    assert result.confidence["level"] == "assumed-absent-keys"
    assert "aws:multifactorauthpresent" in result.message


def _central(policy_statements: list[dict]) -> KmsKey:
    return _key(CENTRAL_ARN, _doc(*policy_statements), sources=["vault:central"])


OWNER_ROOT = {
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{OWNER.id}:root"},
    "Action": "kms:*",
    "Resource": "*",
}
CALLER_ACCOUNTS = {
    "Sid": "AllowWorkloadAccountsThroughBackup",
    "Effect": "Allow",
    "Principal": {"AWS": "*"},
    "Action": ["kms:CreateGrant", "kms:DescribeKey", "kms:Decrypt"],
    "Resource": "*",
    "Condition": {
        "StringEquals": {"kms:CallerAccount": [ACCOUNT.id]},
        "StringLike": {"kms:ViaService": "backup.*.amazonaws.com"},
    },
}


def test_central_key_in_another_account_allowed_by_caller_account():
    results = _decide(_org(), _central([OWNER_ROOT, CALLER_ACCOUNTS]))
    grant = results["kms:CreateGrant"]
    assert grant.status == "pass", grant.message
    assert grant.scenario["request"]["resource_account"] == OWNER.id


def test_central_key_missing_from_key_policy_is_a_key_policy_failure():
    missing = {**CALLER_ACCOUNTS, "Condition": {"StringEquals": {"kms:CallerAccount": ["1" * 12]}}}
    grant = _decide(_org(), _central([OWNER_ROOT, missing]))["kms:CreateGrant"]
    assert grant.status == "fail"
    assert grant.deciding_layer == "resource_policy"
    assert grant.remediation.kind == "add-key-policy-statement"
    assert f"account {OWNER.id}" in grant.message


def test_central_key_blocked_by_the_owner_rcp_not_the_role_accounts():
    block = NamedPolicy(
        "p-central (CentralKeysForWorkloads)",
        _doc(
            {
                "Sid": "OnlyWorkloads",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:*",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "1" * 12}},
            }
        ),
    )
    org = _org()
    org.rcps[OWNER.id] = [*org.rcps[OWNER.id], block]
    grant = _decide(org, _central([OWNER_ROOT, CALLER_ACCOUNTS]))["kms:CreateGrant"]
    assert grant.status == "fail"
    assert grant.deciding_layer == "rcp"
    assert grant.policy == "p-central (CentralKeysForWorkloads)"
    assert grant.statement == "OnlyWorkloads"
    assert f"at account {OWNER.id} (security-keys)" in grant.message
    # the same RCP on the role's own account does not touch a key owned elsewhere
    org = _org()
    org.rcps[ACCOUNT.id] = [*org.rcps[ACCOUNT.id], block]
    assert _decide(org, _central([OWNER_ROOT, CALLER_ACCOUNTS]))["kms:CreateGrant"].status == "pass"


def test_key_outside_the_organization_is_undecided_with_the_reason():
    outside = _key(
        "arn:aws:kms:eu-west-1:777777777777:key/abc",
        key_policy=None,
        key_state="Unreadable",
        sources=["vault:x", "unreadable:its account 777777777777 is not in the organization"],
    )
    outside.key_policy = None
    results = _decide(_org(), outside)
    grant = results["kms:CreateGrant"]
    assert grant.status == "error"
    assert "not in the organization" in grant.message
    assert results["kms:KeyState"].status == "error"
