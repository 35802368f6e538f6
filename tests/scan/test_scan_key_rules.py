"""Key rules through decide: one consistent explanation, message and fix when the key
policy trusts the account only under a condition (kms:ViaService); AWS managed keys
(no RCPs, no key-policy edits); the key owner's RCPs for a key in another account.
Expectations are written from AWS's documentation, not from the engine's output."""

from __future__ import annotations

import copy

from scanner.decide import KEY_STATE_CHECK, decide_account
from scanner.model import (
    Account,
    AccountCollection,
    KmsKey,
    NamedPolicy,
    Organization,
    OrgUnit,
    Role,
)
from scanner.profiles import Profile, Requirement

REGION = "eu-west-1"
ROOT = OrgUnit("r-ab12", "Root")
PROD = OrgUnit("ou-ab12-11111111", "Prod")
CALLER = Account(id="111122223333", name="prod-app", ou_path=(ROOT, PROD))
OWNER = Account(id="444455556666", name="security-keys", ou_path=(ROOT,))
ROLE_ARN = f"arn:aws:iam::{CALLER.id}:role/BackupOperator"
VIA_BACKUP = f"backup.{REGION}.amazonaws.com"
PROFILE = Profile(
    name="test",
    description="",
    requirements=[
        Requirement(
            "kms:CreateGrant",
            "${KeyArn}",
            {"kms:ViaService": "backup.${Region}.${DnsSuffix}", "kms:GrantIsForAWSResource": True},
        ),
    ],
)
ALLOW = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
FULL_ACCESS = NamedPolicy("p-FullAWSAccess (FullAWSAccess)", ALLOW)
RCP_FULL = NamedPolicy(
    "p-RCPFullAWSAccess (RCPFullAWSAccess)",
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}],
    },
)
RCP_DENY_GRANTS = NamedPolicy(
    "p-rcpdeny1 (DenyKmsGrantCreation)",
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyGrantCreation",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "kms:CreateGrant",
                "Resource": "*",
            }
        ],
    },
)


def _organization(rcps_at: dict[str, list[NamedPolicy]] | None = None) -> Organization:
    targets = [ROOT.id, PROD.id, CALLER.id, OWNER.id]
    rcps = {target: [RCP_FULL] for target in targets}
    for target, extra in (rcps_at or {}).items():
        rcps[target] = [RCP_FULL, *extra]
    return Organization(
        management_account_id="999999999999",
        accounts=[CALLER, OWNER],
        scps={target: [FULL_ACCESS] for target in targets},
        rcps=rcps,
        rcps_enabled=True,
    )


def _role() -> Role:
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:CreateGrant", "Resource": "*"}],
    }
    return Role(
        arn=ROLE_ARN, name="BackupOperator", inline_policies=[NamedPolicy("inline", document)]
    )


def _key(account: Account, policy: dict, manager: str = "CUSTOMER") -> KmsKey:
    arn = f"arn:aws:kms:{REGION}:{account.id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    return KmsKey(
        arn=arn,
        key_id=arn.rsplit("/", 1)[-1],
        region=REGION,
        aliases=["alias/aws/backup" if manager == "AWS" else "alias/backup-vault-key"],
        key_policy=policy,
        key_manager=manager,
        sources=["configured"],
    )


def _grant(organization: Organization, key: KmsKey):
    collection = AccountCollection(account=CALLER, roles=[_role()], keys={REGION: [key]})
    results = {r.check: r for r in decide_account(organization, collection, [PROFILE])}
    assert results[KEY_STATE_CHECK].status == "pass"
    return results["kms:CreateGrant"]


def _root_statement(account_id: str, condition: dict | None = None) -> dict:
    statement = {
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# AWS managed key aws/backup, as AWS writes its policy ("auto-backup-1")
def _aws_backup_policy(caller_account: str) -> dict:
    return _policy(
        {
            "Sid": "Allow access through Backup for all principals in the account that are "
            "authorized to use Backup Storage",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:ViaService": VIA_BACKUP, "kms:CallerAccount": caller_account}
            },
        },
        {
            "Sid": "Allow direct access to key metadata to the account",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{caller_account}:root"},
            "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
            "Resource": "*",
        },
    )


# --- a root statement limited by kms:ViaService ------------------------------------------


def test_root_statement_with_unmet_via_service_gets_one_explanation_message_and_fix():
    # The account statement only counts for requests through S3; AWS Backup's request
    # carries kms:ViaService = backup.<region>.amazonaws.com, so IAM policies cannot grant
    # (AWS KMS: kms:ViaService; Key policies, "Default key policy").
    condition = {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
    key = _key(CALLER, _policy(_root_statement(CALLER.id, condition)))
    result = _grant(_organization(), key)
    assert (result.status, result.decision, result.deciding_layer) == (
        "fail",
        "implicitDeny",
        "resource_policy",
    )
    words = 'statement "Enable IAM User Permissions" (StringEquals kms:ViaService)'
    [layer] = [item for item in result.explanation["layers"] if item["layer"] == "resource_policy"]
    trust = result.explanation["account_trust"]
    assert trust["trusted"] is False
    assert trust["unmet"][0]["condition"]["key"] == "kms:ViaService"
    assert layer["reason"] == "account-trust-conditions-unmet"
    assert words in layer["note"]  # the engine's explanation
    assert words in result.message  # decide's message
    assert "only under conditions" in result.message
    fix = result.remediation
    assert fix.kind == "add-key-policy-statement"
    assert words in fix.summary  # the fix names the same condition
    assert fix.statement["Principal"] == {"AWS": ROLE_ARN}
    assert "lacks the default statement" not in result.message


def test_root_statement_whose_via_service_is_met_trusts_the_account():
    condition = {"StringEquals": {"kms:ViaService": VIA_BACKUP}}
    key = _key(CALLER, _policy(_root_statement(CALLER.id, condition)))
    result = _grant(_organization(), key)
    assert result.status == "pass", result.message
    trust = result.explanation["account_trust"]
    assert trust["trusted"] is True
    assert trust["conditions"] == [
        {"operator": "StringEquals", "key": "kms:ViaService", "values": [VIA_BACKUP]}
    ]


def test_key_policy_without_any_account_statement_restores_the_default():
    key = _key(CALLER, _policy({**_root_statement("999999999999"), "Sid": "Admins"}))
    result = _grant(_organization(), key)
    assert result.deciding_layer == "resource_policy"
    assert "lacks the default statement" in result.message
    assert result.remediation.kind == "restore-key-policy-default"


# --- AWS managed keys ------------------------------------------------------------------


def test_rcp_denying_grants_fails_a_customer_key_but_not_aws_backup():
    organization = _organization({CALLER.id: [RCP_DENY_GRANTS]})
    customer = _grant(organization, _key(CALLER, _policy(_root_statement(CALLER.id))))
    assert (customer.status, customer.deciding_layer) == ("fail", "rcp")
    assert customer.remediation.kind == "edit-rcp-deny"
    managed = _grant(organization, _key(CALLER, _aws_backup_policy(CALLER.id), "AWS"))
    assert managed.status == "pass", managed.message
    assert managed.scenario["request"]["key_manager"] == "AWS"


def test_key_manager_comes_from_describe_key_not_the_alias():
    # an alias under alias/aws/ on a key DescribeKey reports as CUSTOMER: RCPs apply
    organization = _organization({CALLER.id: [RCP_DENY_GRANTS]})
    key = _key(CALLER, _aws_backup_policy(CALLER.id), "CUSTOMER")
    key.aliases = ["alias/aws/backup"]
    result = _grant(organization, key)
    assert (result.status, result.deciding_layer) == ("fail", "rcp")


def test_aws_managed_key_failure_is_never_fixed_with_a_key_policy_edit():
    # aws/backup of another caller account: kms:CallerAccount is not met
    key = _key(CALLER, _aws_backup_policy("777788889999"), "AWS")
    result = _grant(_organization(), key)
    assert (result.status, result.deciding_layer) == ("fail", "resource_policy")
    fix = result.remediation
    assert fix.kind == "use-customer-managed-key"
    assert not any("put-key-policy" in command for command in fix.commands)
    assert "create-key" in fix.commands[0]
    assert "AWS managed key" in fix.summary and "AWS managed key" in result.message


def test_aws_managed_key_deny_is_not_fixed_with_a_key_policy_edit():
    deny = {
        "Sid": "NoGrants",
        "Effect": "Deny",
        "Principal": {"AWS": ROLE_ARN},
        "Action": "kms:CreateGrant",
        "Resource": "*",
    }
    policy = copy.deepcopy(_aws_backup_policy(CALLER.id))
    policy["Statement"].append(deny)
    result = _grant(_organization(), _key(CALLER, policy, "AWS"))
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "resource_policy")
    assert result.remediation.kind == "use-customer-managed-key"
    assert not any("put-key-policy" in command for command in result.remediation.commands)


# --- a customer managed key in another account: the owner's RCPs ------------------------


def _owner_key() -> KmsKey:
    statement = {
        "Sid": "AllowCallerAccount",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{CALLER.id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return _key(OWNER, _policy(_root_statement(OWNER.id), statement))


def test_key_in_another_account_is_governed_by_its_owners_rcps():
    result = _grant(_organization({OWNER.id: [RCP_DENY_GRANTS]}), _owner_key())
    assert (result.status, result.deciding_layer) == ("fail", "rcp")
    assert f"at account {OWNER.id}" in result.message
    assert result.scenario["request"]["resource_account"] == OWNER.id


def test_key_in_another_account_ignores_the_callers_rcps():
    result = _grant(_organization({CALLER.id: [RCP_DENY_GRANTS]}), _owner_key())
    assert result.status == "pass", result.message
