"""decide on hand-built collections: the simulator cross-check, key states, and accounts
without a designated role. No AWS, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scanner.decide import KEY_STATE_CHECK, ROLE_PRESENT_CHECK, decide_account
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
from scanner.profiles import Profile, Requirement

ACCOUNT = Account(
    id="111122223333",
    name="prod-app",
    ou_path=(OrgUnit("r-ab12", "Root"), OrgUnit("ou-ab12-11111111", "Prod")),
)
REGION = "eu-west-1"
KEY_ARN = f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE_ARN = "arn:aws:iam::111122223333:role/backup/BackupOperator"
FULL_ACCESS = NamedPolicy(
    "p-FullAWSAccess (FullAWSAccess)",
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
)
PROFILE = Profile(
    name="test",
    description="",
    requirements=[
        Requirement(
            "backup:CreateBackupVault",
            "arn:${Partition}:backup:${Region}:${Account}:backup-vault:*",
        ),
        Requirement("kms:CreateGrant", "${KeyArn}", {"kms:GrantIsForAWSResource": True}),
    ],
)


def _organization() -> Organization:
    targets = ["r-ab12", "ou-ab12-11111111", ACCOUNT.id]
    return Organization(
        management_account_id="999999999999",
        accounts=[ACCOUNT],
        scps={target: [FULL_ACCESS] for target in targets},
    )


def _role(*statements: dict) -> Role:
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    return Role(
        arn=ROLE_ARN,
        name="BackupOperator",
        path="/backup/",
        inline_policies=[NamedPolicy("inline:BackupOperator/Vaults", document)],
    )


ALLOW_ALL_NEEDED = (
    {"Effect": "Allow", "Action": "backup:CreateBackupVault", "Resource": "*"},
    {"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": KEY_ARN},
)


def _key(**changes) -> KmsKey:
    values = dict(
        arn=KEY_ARN,
        key_id=KEY_ARN.rsplit("/", 1)[-1],
        region=REGION,
        aliases=["alias/backup-vault-key"],
        key_policy={
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
        sources=["configured"],
    )
    values.update(changes)
    return KmsKey(**values)


def _collection(role: Role, key: KmsKey, answers=None) -> AccountCollection:
    collection = AccountCollection(account=ACCOUNT, roles=[role], keys={REGION: [key]})
    if answers is not None:
        collection.simulations[(role.arn, REGION)] = answers
    return collection


def _by_check(results):
    return {result.check: result for result in results}


def test_agreeing_simulator_passes_without_disagreement():
    vault = f"arn:aws:backup:{REGION}:{ACCOUNT.id}:backup-vault:*"
    answers = [
        SimulatorAnswer("backup:CreateBackupVault", vault, "allowed"),
        SimulatorAnswer("kms:CreateGrant", KEY_ARN, "allowed"),
    ]
    results = _by_check(
        decide_account(
            _organization(), _collection(_role(*ALLOW_ALL_NEEDED), _key(), answers), [PROFILE]
        )
    )
    assert {check: r.status for check, r in results.items()} == {
        "backup:CreateBackupVault": "pass",
        "kms:CreateGrant": "pass",
        KEY_STATE_CHECK: "pass",
    }
    assert results["kms:CreateGrant"].simulator_decision == "allowed"
    assert not any(r.disagreement for r in results.values())


def test_simulator_deny_the_engine_does_not_see_is_a_failing_disagreement():
    vault = f"arn:aws:backup:{REGION}:{ACCOUNT.id}:backup-vault:*"
    answers = [
        SimulatorAnswer("backup:CreateBackupVault", vault, "implicitDeny"),
        SimulatorAnswer("kms:CreateGrant", KEY_ARN, "allowed"),
    ]
    results = _by_check(
        decide_account(
            _organization(), _collection(_role(*ALLOW_ALL_NEEDED), _key(), answers), [PROFILE]
        )
    )
    vault_check = results["backup:CreateBackupVault"]
    assert vault_check.decision == "allowed"  # the engine's own answer is kept
    assert vault_check.status == "fail"
    assert vault_check.disagreement is True
    assert "says implicitDeny" in vault_check.message and "says allowed" in vault_check.message
    assert vault_check.remediation.kind == "investigate-simulator-deny"
    assert results["kms:CreateGrant"].disagreement is False


def test_engine_deny_with_allowing_simulator_is_a_disagreement_too():
    answers = [SimulatorAnswer("kms:CreateGrant", KEY_ARN, "allowed")]
    role = _role(ALLOW_ALL_NEEDED[0])  # no kms:CreateGrant in the identity policy
    result = _by_check(
        decide_account(_organization(), _collection(role, _key(), answers), [PROFILE])
    )["kms:CreateGrant"]
    assert (result.status, result.decision, result.deciding_layer) == (
        "fail",
        "implicitDeny",
        "identity",
    )
    assert result.disagreement is True


def test_key_policy_only_layers_are_not_compared_with_the_simulator():
    # The RCP denies: AWS's simulator does not evaluate RCPs, so its allow is no disagreement.
    rcp = NamedPolicy(
        "p-rcp1 (DenyGrants)",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "NoGrants",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "kms:CreateGrant",
                    "Resource": "*",
                }
            ],
        },
    )
    organization = _organization()
    organization.rcps_enabled = True
    allow_rcp = NamedPolicy(
        "p-RCPFullAWSAccess (RCPFullAWSAccess)",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}],
        },
    )
    organization.rcps = {t: [allow_rcp] for t in ("r-ab12", "ou-ab12-11111111", ACCOUNT.id)}
    organization.rcps["ou-ab12-11111111"] = [allow_rcp, rcp]
    answers = [SimulatorAnswer("kms:CreateGrant", KEY_ARN, "allowed")]
    result = _by_check(
        decide_account(
            organization, _collection(_role(*ALLOW_ALL_NEEDED), _key(), answers), [PROFILE]
        )
    )["kms:CreateGrant"]
    assert (result.status, result.deciding_layer, result.disagreement) == ("fail", "rcp", False)
    assert result.policy == "p-rcp1 (DenyGrants)"
    assert result.statement == "NoGrants"
    assert "at OU Prod" in result.message


@pytest.mark.parametrize(
    ("state", "status", "kind"),
    [
        ("Disabled", "fail", "enable-key"),
        ("PendingDeletion", "fail", "cancel-key-deletion"),
        ("PendingImport", "fail", "key-unavailable"),
    ],
)
def test_unusable_key_states_fail_with_their_fix(state, status, kind):
    key = _key(key_state=state, deletion_date=datetime(2030, 1, 2, tzinfo=UTC))
    result = _by_check(
        decide_account(_organization(), _collection(_role(*ALLOW_ALL_NEEDED), key), [PROFILE])
    )[KEY_STATE_CHECK]
    assert (result.status, result.remediation.kind) == (status, kind)
    assert result.role_arn == ""
    if state == "PendingDeletion":
        assert "2030-01-02" in result.message


def test_asymmetric_key_fails_the_key_state_check():
    key = _key(key_spec="RSA_2048")
    result = _by_check(
        decide_account(_organization(), _collection(_role(*ALLOW_ALL_NEEDED), key), [PROFILE])
    )[KEY_STATE_CHECK]
    assert result.status == "fail"
    assert result.remediation.kind == "use-symmetric-key"


def test_missing_custom_key_fails_and_skips_key_actions():
    key = _key(
        key_state="NotFound",
        key_policy=None,
        arn=f"arn:aws:kms:{REGION}:{ACCOUNT.id}:alias/backup-vault-key",
    )
    results = _by_check(
        decide_account(_organization(), _collection(_role(*ALLOW_ALL_NEEDED), key), [PROFILE])
    )
    assert set(results) == {"backup:CreateBackupVault", KEY_STATE_CHECK}
    assert results[KEY_STATE_CHECK].status == "fail"
    assert results[KEY_STATE_CHECK].remediation.kind == "create-key"


def test_aws_managed_key_not_created_yet_is_not_a_failure():
    key = _key(
        key_state="NotCreated",
        key_policy=None,
        aliases=["alias/aws/backup"],
        key_manager="AWS",
        arn=f"arn:aws:kms:{REGION}:{ACCOUNT.id}:alias/aws/backup",
    )
    result = _by_check(
        decide_account(_organization(), _collection(_role(*ALLOW_ALL_NEEDED), key), [PROFILE])
    )[KEY_STATE_CHECK]
    assert result.status == "pass"
    assert "first time" in result.message


def test_unreadable_key_gives_error_rows_not_verdicts():
    key = _key(key_state="Unreadable", key_policy=None)
    results = _by_check(
        decide_account(_organization(), _collection(_role(*ALLOW_ALL_NEEDED), key), [PROFILE])
    )
    assert results[KEY_STATE_CHECK].status == "error"
    assert results["kms:CreateGrant"].status == "error"
    assert "could not be read" in results["kms:CreateGrant"].message
    assert results["backup:CreateBackupVault"].status == "pass"


def test_account_without_designated_role_fails_visibly():
    collection = AccountCollection(account=ACCOUNT, roles=[], keys={REGION: [_key()]})
    results = _by_check(decide_account(_organization(), collection, [PROFILE]))
    assert results[ROLE_PRESENT_CHECK].status == "fail"
    assert results[KEY_STATE_CHECK].status == "pass"


def test_unreadable_account_yields_no_verdicts():
    collection = AccountCollection(account=ACCOUNT, error="AccessDenied: cannot assume")
    assert decide_account(_organization(), collection, [PROFILE]) == []


def test_vault_keys_get_their_own_check_names():
    vault_key = _key(
        arn=KEY_ARN.replace("1234abcd", "9999abcd"),
        key_id="9999abcd",
        aliases=[],
        sources=["vault:Daily"],
    )
    collection = _collection(_role(*ALLOW_ALL_NEEDED), _key())
    collection.keys[REGION].append(vault_key)
    results = decide_account(_organization(), collection, [PROFILE])
    checks = [r.check for r in results]
    assert len(checks) == len(set(r.key for r in results))  # every check key unique
    assert "kms:CreateGrant" in checks and "kms:CreateGrant (9999abcd)" in checks


def test_engine_simulator_answers_like_the_iam_simulator():
    from scanner.engine_simulator import EngineSimulator

    organization = _organization()
    organization.scps["ou-ab12-11111111"] = [
        FULL_ACCESS,
        NamedPolicy(
            "p-deny (NoVaults)",
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Deny", "Action": "backup:CreateBackupVault", "Resource": "*"}
                ],
            },
        ),
    ]
    role = _role(*ALLOW_ALL_NEEDED)
    role.permissions_boundary = NamedPolicy(
        "arn:aws:iam::111122223333:policy/B",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "backup:*", "Resource": "*"}],
        },
    )
    vault = f"arn:aws:backup:{REGION}:{ACCOUNT.id}:backup-vault:*"
    answers = EngineSimulator(organization).simulate(
        None,
        role,
        ACCOUNT,
        REGION,
        [
            ("backup:CreateBackupVault", vault, {}),
            ("kms:CreateGrant", KEY_ARN, {"kms:GrantIsForAWSResource": True}),
        ],
    )
    vault_answer, grant_answer = answers
    assert (vault_answer.decision, vault_answer.allowed_by_organizations) == ("explicitDeny", False)
    assert vault_answer.source == "sandbox-engine"
    # the simulator never sees the key policy: only the boundary stops CreateGrant here
    assert (
        grant_answer.decision,
        grant_answer.allowed_by_boundary,
        grant_answer.allowed_by_organizations,
    ) == ("implicitDeny", False, True)


def test_explanations_name_the_level_of_each_scp():
    results = _by_check(
        decide_account(_organization(), _collection(_role(*ALLOW_ALL_NEEDED), _key()), [PROFILE])
    )
    scp_layer = next(
        layer
        for layer in results["kms:CreateGrant"].explanation["layers"]
        if layer["layer"] == "scp"
    )
    # FullAWSAccess is attached at every level: each allowing statement says where
    assert [statement["policy"] for statement in scp_layer["statements"]] == [
        "p-FullAWSAccess (FullAWSAccess) at root",
        "p-FullAWSAccess (FullAWSAccess) at OU Prod",
        "p-FullAWSAccess (FullAWSAccess) at account 111122223333 (prod-app)",
    ]


def test_an_scp_deny_names_the_plain_policy_and_its_level():
    deny = NamedPolicy(
        "p-deny1234 (DenyVaults)",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyVaults",
                    "Effect": "Deny",
                    "Action": "backup:CreateBackupVault",
                    "Resource": "*",
                }
            ],
        },
    )
    organization = _organization()
    organization.scps["ou-ab12-11111111"] = [FULL_ACCESS, deny]
    results = _by_check(
        decide_account(organization, _collection(_role(*ALLOW_ALL_NEEDED), _key()), [PROFILE])
    )
    vault = results["backup:CreateBackupVault"]
    assert (vault.status, vault.deciding_layer) == ("fail", "scp")
    assert (vault.policy, vault.statement) == ("p-deny1234 (DenyVaults)", "DenyVaults")
    assert "at OU Prod" in vault.message
    assert vault.message.count("at OU Prod") == 1
