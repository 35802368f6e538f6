"""Layered evaluation: SCP/RCP paths, boundaries, identity and resource policies,
same- and cross-account, KMS key policies (each test cites the rule it checks)."""

from __future__ import annotations

from policy_builders import (
    ACCOUNT,
    ALLOW_ALL,
    KEY,
    OTHER_ACCOUNT,
    ROLE,
    ROOT_TRUST,
    SESSION,
    VAULT,
    decide,
    policy,
    scenario_dict,
    stmt,
)

from scanner.policy import Scenario, evaluate

ADMIN = f"arn:aws:iam::{ACCOUNT}:role/Admin"
BUCKET = "arn:aws:s3:::backup-reports/2024/report.csv"
ALLOW_KMS = policy(stmt(action="kms:*", Sid="KmsUse"))
ALLOW_BACKUP = policy(stmt(action=["backup:CreateBackupVault", "backup-storage:MountCapsule"]))


# --- SCPs: "Every level must allow the action"; a Deny at any level denies ---------------


def test_scp_allow_needed_at_every_level() -> None:
    result = decide(
        scps=[[ALLOW_ALL], [ALLOW_ALL], [policy(stmt(action="s3:*"))]],
        identity=[ALLOW_KMS],
        resource_policy=ROOT_TRUST,
    )
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "scp")
    assert "level 2 (account)" in (result.layer("scp").note or "")


def test_scp_allow_at_root_alone_is_not_enough() -> None:
    result = decide(scps=[[ALLOW_ALL], []], identity=[ALLOW_KMS], resource_policy=ROOT_TRUST)
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "scp")


def test_scp_deny_at_any_level_wins_and_is_named() -> None:
    deny = policy(stmt(Sid="Allow"), stmt("Deny", "kms:CreateGrant", Sid="NoGrants"))
    result = decide(
        scps=[[ALLOW_ALL], [deny], [ALLOW_ALL]],
        identity=[ALLOW_KMS],
        resource_policy=ROOT_TRUST,
    )
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "scp")
    [ref] = result.layer("scp").statements
    assert (ref.policy, ref.sid, ref.index, ref.effect) == ("level 1 #0", "NoGrants", 1, "Deny")


def test_not_governed_by_scps_when_outer_list_is_empty() -> None:
    result = decide(scps=[], identity=[ALLOW_KMS], resource_policy=ROOT_TRUST)
    assert result.decision == "allowed"
    assert result.layer("scp") is None


def test_scp_allow_at_every_level_allows() -> None:
    result = decide(
        scps=[[ALLOW_ALL], [ALLOW_ALL, policy(stmt("Deny", "s3:*"))]],
        identity=[ALLOW_KMS],
        resource_policy=ROOT_TRUST,
    )
    assert result.decision == "allowed" and result.deciding_layer is None


# --- RCPs --------------------------------------------------------------------------------

RCP_FULL = policy(stmt(Principal="*", Sid="RCPFullAWSAccess"))


def test_rcp_deny_on_kms_key_denies() -> None:
    deny = policy(
        stmt(
            "Deny",
            "kms:*",
            Principal="*",
            Sid="OrgOnly",
            Condition={"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-abc"}},
        )
    )
    result = decide(rcps=[[RCP_FULL, deny]], identity=[ALLOW_KMS], resource_policy=ROOT_TRUST)
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "rcp")
    allowed = decide(
        rcps=[[RCP_FULL, deny]],
        identity=[ALLOW_KMS],
        resource_policy=ROOT_TRUST,
        context={"aws:PrincipalOrgID": "o-abc"},
    )
    assert allowed.decision == "allowed"


def test_rcp_level_without_allow_denies() -> None:
    result = decide(rcps=[[RCP_FULL], []], identity=[ALLOW_KMS], resource_policy=ROOT_TRUST)
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "rcp")


def test_rcps_do_not_apply_to_services_that_do_not_support_them() -> None:
    deny = policy(stmt("Deny", "backup:*", Principal="*"))
    result = decide(
        action="backup:CreateBackupVault",
        resource=VAULT,
        rcps=[[RCP_FULL, deny]],
        identity=[ALLOW_BACKUP],
    )
    assert result.decision == "allowed"
    assert "do not apply" in (result.layer("rcp").note or "")


# --- permissions boundary ----------------------------------------------------------------


def test_boundary_must_allow_what_identity_allows() -> None:
    result = decide(
        boundary=policy(stmt(action="backup:*")), identity=[ALLOW_KMS], resource_policy=ROOT_TRUST
    )
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "permissions_boundary")


def test_boundary_deny_is_explicit() -> None:
    result = decide(
        boundary=policy(stmt(), stmt("Deny", "kms:Create*")),
        identity=[ALLOW_KMS],
        resource_policy=ROOT_TRUST,
    )
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "permissions_boundary")


def test_boundary_and_identity_both_allow() -> None:
    result = decide(boundary=ALLOW_ALL, identity=[ALLOW_KMS], resource_policy=ROOT_TRUST)
    assert result.decision == "allowed"


# --- identity ----------------------------------------------------------------------------


def test_no_identity_allow_is_implicit_deny_of_identity() -> None:
    result = decide(action="backup:CreateBackupVault", resource=VAULT)
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "identity")
    assert result.layer("identity").statements == []


def test_identity_deny_wins_over_allow() -> None:
    result = decide(
        action="backup:CreateBackupVault",
        resource=VAULT,
        identity=[ALLOW_BACKUP, policy(stmt("Deny", "backup:*", Sid="Freeze"))],
    )
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "identity")
    assert [r.policy for r in result.layer("identity").statements] == ["#1"]


def test_action_matching_is_case_insensitive_and_resource_case_sensitive() -> None:
    ok = decide(
        action="backup:createbackupvault",
        resource=VAULT,
        identity=[policy(stmt(action="BACKUP:CreateBackup*", resource=VAULT))],
    )
    assert ok.decision == "allowed"
    wrong_case = decide(
        action="backup:CreateBackupVault",
        resource=VAULT,
        identity=[policy(stmt(action="backup:*", resource=VAULT.upper()))],
    )
    assert wrong_case.decision == "implicitDeny"


def test_not_action_and_not_resource() -> None:
    everything_but_kms = policy(stmt(action="kms:*", not_action=True))
    assert (
        decide(identity=[everything_but_kms], resource_policy=ROOT_TRUST).decision == "implicitDeny"
    )
    other_keys = policy(stmt(action="kms:*", resource=KEY, not_resource=True))
    assert decide(identity=[other_keys], resource_policy=ROOT_TRUST).decision == "implicitDeny"
    assert (
        decide(
            identity=[policy(stmt(action="s3:*", not_action=True))], resource_policy=ROOT_TRUST
        ).decision
        == "allowed"
    )


# --- resource policies, same account -------------------------------------------------------


def bucket_policy(principal: object) -> dict:
    return policy(
        stmt(
            action="s3:GetObject",
            resource="arn:aws:s3:::backup-reports/*",
            Principal=principal,
            Sid="Read",
        )
    )


def same_account_s3(**kwargs: object):
    return decide(action="s3:GetObject", resource=BUCKET, resource_account=ACCOUNT, **kwargs)


def test_same_account_resource_policy_alone_grants() -> None:
    result = same_account_s3(resource_policy=bucket_policy({"AWS": ROLE}))
    assert result.decision == "allowed"


def test_same_account_identity_alone_grants() -> None:
    result = same_account_s3(
        identity=[policy(stmt(action="s3:GetObject"))],
        resource_policy=bucket_policy({"AWS": f"{OTHER_ACCOUNT}"}),
    )
    assert result.decision == "allowed"


def test_account_principal_in_resource_policy_does_not_grant_by_itself() -> None:
    result = same_account_s3(resource_policy=bucket_policy({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "identity")


def test_boundary_limits_resource_policy_naming_the_role_arn() -> None:
    # Permissions boundaries for IAM entities: a resource-based policy that grants to the
    # role ARN is limited by the boundary ...
    result = same_account_s3(
        boundary=policy(stmt(action="kms:*")), resource_policy=bucket_policy({"AWS": ROLE})
    )
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "permissions_boundary")


def test_boundary_does_not_limit_resource_policy_naming_the_session() -> None:
    # ... but an implicit deny in the boundary does not limit a grant to the role session.
    result = same_account_s3(
        principal=SESSION,
        boundary=policy(stmt(action="kms:*")),
        resource_policy=bucket_policy({"AWS": SESSION}),
    )
    assert result.decision == "allowed"


def test_session_principal_matches_a_statement_naming_its_role() -> None:
    result = same_account_s3(principal=SESSION, resource_policy=bucket_policy({"AWS": ROLE}))
    assert result.decision == "allowed"
    other_session = SESSION.replace("nightly", "adhoc")
    result = same_account_s3(
        principal=SESSION, resource_policy=bucket_policy({"AWS": other_session})
    )
    assert result.decision == "implicitDeny"


def test_principal_forms() -> None:
    assert same_account_s3(resource_policy=bucket_policy("*")).decision == "allowed"
    assert same_account_s3(resource_policy=bucket_policy({"AWS": "*"})).decision == "allowed"
    assert (
        same_account_s3(resource_policy=bucket_policy({"AWS": [OTHER_ACCOUNT, ROLE]})).decision
        == "allowed"
    )
    service = bucket_policy({"Service": "backup.amazonaws.com"})
    assert same_account_s3(resource_policy=service).decision == "implicitDeny"


def test_resource_policy_deny_wins() -> None:
    deny = policy(
        stmt(action="s3:GetObject", resource="*", Principal="*"),
        stmt("Deny", "s3:*", "*", Principal={"AWS": ROLE}, Sid="Block"),
    )
    result = same_account_s3(identity=[ALLOW_ALL], resource_policy=deny)
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "resource_policy")


# --- NotPrincipal ------------------------------------------------------------------------------


def not_principal_deny(*names: str) -> dict:
    return policy(stmt("Deny", "s3:*", "*", NotPrincipal={"AWS": list(names)}, Sid="OnlyOps"))


def test_not_principal_deny_exempts_a_fully_listed_principal() -> None:
    listed = not_principal_deny(SESSION, ROLE, f"arn:aws:iam::{ACCOUNT}:root")
    result = same_account_s3(principal=SESSION, identity=[ALLOW_ALL], resource_policy=listed)
    assert result.decision == "allowed"


def test_not_principal_deny_applies_unless_the_session_is_listed() -> None:
    # NotPrincipal docs: list the session, the role and the account.
    listed = not_principal_deny(ROLE, f"arn:aws:iam::{ACCOUNT}:root")
    result = same_account_s3(principal=SESSION, identity=[ALLOW_ALL], resource_policy=listed)
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "resource_policy")


def test_not_principal_deny_always_denies_a_principal_with_a_boundary() -> None:
    listed = not_principal_deny(SESSION, ROLE, f"arn:aws:iam::{ACCOUNT}:root")
    result = same_account_s3(
        principal=SESSION, identity=[ALLOW_ALL], boundary=ALLOW_ALL, resource_policy=listed
    )
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "resource_policy")


# --- cross-account ------------------------------------------------------------------------------

FOREIGN_KEY = KEY.replace(ACCOUNT, OTHER_ACCOUNT)


def test_cross_account_needs_identity_and_resource_policy() -> None:
    key_policy = policy(stmt(action="kms:*", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}))
    both = decide(resource=FOREIGN_KEY, identity=[ALLOW_KMS], resource_policy=key_policy)
    assert both.decision == "allowed"
    no_identity = decide(resource=FOREIGN_KEY, resource_policy=key_policy)
    assert (no_identity.decision, no_identity.deciding_layer) == ("implicitDeny", "identity")
    no_resource = decide(
        resource=FOREIGN_KEY,
        identity=[ALLOW_KMS],
        resource_policy=policy(stmt(Principal={"AWS": OTHER_ACCOUNT})),
    )
    assert (no_resource.decision, no_resource.deciding_layer) == ("implicitDeny", "resource_policy")


def test_cross_account_without_resource_policy_is_denied_by_that_layer() -> None:
    foreign_vault = VAULT.replace(ACCOUNT, OTHER_ACCOUNT)
    result = decide(action="backup:CreateBackupVault", resource=foreign_vault, identity=[ALLOW_ALL])
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "resource_policy")
    assert "another account" in (result.layer("resource_policy").note or "")


def test_cross_account_resource_policy_naming_the_role_still_needs_identity() -> None:
    result = decide(resource=FOREIGN_KEY, resource_policy=policy(stmt(Principal={"AWS": ROLE})))
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "identity")


def test_cross_account_boundary_applies_even_to_session_grants() -> None:
    result = decide(
        principal=SESSION,
        resource=FOREIGN_KEY,
        identity=[ALLOW_KMS],
        boundary=policy(stmt(action="s3:*")),
        resource_policy=policy(stmt(Principal={"AWS": SESSION})),
    )
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "permissions_boundary")


# --- KMS key policies --------------------------------------------------------------------------


def test_key_policy_root_statement_enables_iam_policies() -> None:
    assert decide(identity=[ALLOW_KMS], resource_policy=ROOT_TRUST).decision == "allowed"


def test_without_root_statement_iam_allows_are_ineffective() -> None:
    admins_only = policy(stmt(action="kms:*", Principal={"AWS": ADMIN}))
    result = decide(identity=[ALLOW_KMS], resource_policy=admins_only)
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "resource_policy")
    assert "root" in (result.layer("resource_policy").note or "")


def test_root_statement_must_cover_the_action() -> None:
    describe_only = policy(
        stmt(action="kms:DescribeKey", Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    )
    result = decide(identity=[ALLOW_KMS], resource_policy=describe_only)
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "resource_policy")


def test_account_id_principal_also_enables_iam_policies() -> None:
    by_id = policy(stmt(action="kms:*", Principal={"AWS": ACCOUNT}))
    assert decide(identity=[ALLOW_KMS], resource_policy=by_id).decision == "allowed"


def test_key_policy_statement_without_resource_has_no_effect() -> None:
    # AWS KMS, Key policy elements: a statement missing the required Resource element
    # has no effect, so this root statement does not enable IAM policies.
    no_resource = policy(
        {"Effect": "Allow", "Action": "kms:*", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}
    )
    result = decide(identity=[ALLOW_KMS], resource_policy=no_resource)
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "resource_policy")


def test_unique_id_principal_matches_no_current_role() -> None:
    # Principal docs: a deleted-and-recreated role shows up as its old unique id.
    stale = policy(stmt(action="kms:*", Principal={"AWS": "AROADBQP57FF2AEXAMPLE"}))
    result = decide(identity=[ALLOW_KMS], resource_policy=stale)
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "resource_policy")


def test_key_policy_naming_the_role_grants_without_iam_policy() -> None:
    direct = policy(stmt(action="kms:CreateGrant", Principal={"AWS": ROLE}, Sid="Backup"))
    result = decide(resource_policy=direct)
    assert result.decision == "allowed"
    assert [r.sid for r in result.layer("resource_policy").statements] == ["Backup"]


def test_iam_deny_still_denies_when_key_policy_grants() -> None:
    direct = policy(stmt(action="kms:*", Principal={"AWS": ROLE}))
    result = decide(identity=[policy(stmt("Deny", "kms:CreateGrant"))], resource_policy=direct)
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "identity")


def test_key_policy_deny_wins() -> None:
    key_policy = policy(
        ROOT_TRUST["Statement"][0],
        stmt(
            "Deny",
            "kms:CreateGrant",
            Principal="*",
            Sid="NoGrants",
            Condition={"Bool": {"kms:GrantIsForAWSResource": "false"}},
        ),
    )
    result = decide(
        identity=[ALLOW_KMS],
        resource_policy=key_policy,
        context={"kms:GrantIsForAWSResource": False},
    )
    assert (result.decision, result.deciding_layer) == ("explicitDeny", "resource_policy")
    allowed = decide(
        identity=[ALLOW_KMS],
        resource_policy=key_policy,
        context={"kms:GrantIsForAWSResource": True},
    )
    assert allowed.decision == "allowed"


def test_missing_key_policy_makes_iam_allows_ineffective() -> None:
    result = decide(identity=[ALLOW_KMS])
    assert (result.decision, result.deciding_layer) == ("implicitDeny", "resource_policy")


def test_retire_grant_is_not_governed_by_rcps() -> None:
    # grant-delete: "not effective in a key policy or resource control policy"
    deny = policy(stmt("Deny", "kms:*", Principal="*"))
    result = decide(
        action="kms:RetireGrant",
        identity=[ALLOW_KMS],
        resource_policy=ROOT_TRUST,
        rcps=[[RCP_FULL, deny]],
    )
    assert result.decision == "allowed"
    assert "resource control" in (result.layer("rcp").note or "")


def test_retire_grant_is_not_governed_by_the_key_policy() -> None:
    admins_only = policy(
        stmt(action="kms:*", Principal={"AWS": ADMIN}),
        stmt("Deny", "kms:RetireGrant", Principal="*"),
    )
    result = decide(action="kms:RetireGrant", identity=[ALLOW_KMS], resource_policy=admins_only)
    assert result.decision == "allowed"
    assert "RetireGrant" in (result.layer("resource_policy").note or "")
    denied = decide(action="kms:RetireGrant", resource_policy=ROOT_TRUST)
    assert (denied.decision, denied.deciding_layer) == ("implicitDeny", "identity")


# --- policy variables and derived context ---------------------------------------------------


def test_variable_in_resource_is_substituted_only_with_version_2012() -> None:
    own_vault = stmt(
        action="backup:*",
        resource="arn:aws:backup:us-west-2:*:backup-vault:${aws:PrincipalTag/team}",
    )
    context = {"aws:PrincipalTag/team": "main"}
    assert (
        decide(
            action="backup:CreateBackupVault",
            resource=VAULT,
            context=context,
            identity=[policy(own_vault)],
        ).decision
        == "allowed"
    )
    literal = policy(own_vault, version="2008-10-17")
    assert (
        decide(
            action="backup:CreateBackupVault", resource=VAULT, context=context, identity=[literal]
        ).decision
        == "implicitDeny"
    )
    # no Version at all: also literal
    assert (
        decide(
            action="backup:CreateBackupVault",
            resource=VAULT,
            context=context,
            identity=[policy(own_vault, version=None)],
        ).decision
        == "implicitDeny"
    )


def test_unresolvable_variable_does_not_match() -> None:
    # aws:username is not present for roles
    by_user = stmt(action="backup:*", resource="arn:aws:backup:*:*:backup-vault:${aws:username}")
    result = decide(
        action="backup:CreateBackupVault", resource=VAULT, identity=[policy(by_user)], context={}
    )
    assert result.decision == "implicitDeny"
    with_default = stmt(
        action="backup:*", resource="arn:aws:backup:*:*:backup-vault:${aws:username, 'main'}"
    )
    assert (
        decide(
            action="backup:CreateBackupVault", resource=VAULT, identity=[policy(with_default)]
        ).decision
        == "allowed"
    )
    # with a value present the default is not used
    by_tag = stmt(
        action="backup:*",
        resource="arn:aws:backup:*:*:backup-vault:${aws:PrincipalTag/team, 'main'}",
    )
    assert (
        decide(
            action="backup:CreateBackupVault",
            resource=VAULT,
            identity=[policy(by_tag)],
            context={"aws:PrincipalTag/team": "ops"},
        ).decision
        == "implicitDeny"
    )
    assert (
        decide(
            action="backup:CreateBackupVault",
            resource=VAULT,
            identity=[policy(by_tag)],
            context={"aws:PrincipalTag/team": "main"},
        ).decision
        == "allowed"
    )


def test_principal_arn_of_a_session_is_the_role_arn() -> None:
    only_role = policy(stmt(action="kms:*", Condition={"ArnEquals": {"aws:PrincipalArn": ROLE}}))
    assert (
        decide(principal=SESSION, identity=[only_role], resource_policy=ROOT_TRUST).decision
        == "allowed"
    )


def test_requested_region_comes_from_the_resource_unless_given() -> None:
    west_only = policy(
        stmt(action="kms:*", Condition={"StringEquals": {"aws:RequestedRegion": "us-west-2"}})
    )
    assert decide(identity=[west_only], resource_policy=ROOT_TRUST).decision == "allowed"
    overridden = decide(
        identity=[west_only],
        resource_policy=ROOT_TRUST,
        context={"aws:RequestedRegion": "eu-west-1"},
    )
    assert overridden.decision == "implicitDeny"


def test_principal_account_condition() -> None:
    same_account = policy(
        stmt(
            action="kms:*",
            Principal="*",
            Condition={"StringEquals": {"aws:PrincipalAccount": ACCOUNT}},
        )
    )
    assert decide(resource_policy=same_account).decision == "allowed"


def test_policy_names_are_used_in_explanations() -> None:
    data = scenario_dict(
        identity=[policy(stmt("Deny", "kms:*", Sid="Freeze"))],
        scps=[[ALLOW_ALL]],
        resource_policy=ROOT_TRUST,
    )
    data["policy_names"] = {"identity": ["inline:Freeze"], "scps": [["p-full (FullAWSAccess)"]]}
    result = evaluate(Scenario.from_dict(data))
    assert result.layer("identity").statements[0].policy == "inline:Freeze"
    assert result.layer("scp").statements[0].policy == "p-full (FullAWSAccess)"
