"""A sandbox AWS Organization for the demo and the tests, seeded through boto3.

Works against moto in-process (`mock_aws()`) and against a moto server (AWS_ENDPOINT_URL):
everything goes through the one boto3 Session given. Member accounts are written to
through AssumeRole of OrganizationAccountAccessRole, as an administrator would.
Each member account gets one planted cause of Access Denied (scanner/sandbox_data/layout.py)
with its expected verdict, so tests compare the scan against hand-written expectations.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

import boto3

from scanner.config import Settings
from scanner.sandbox_aws import AWS_BACKUP_KEY_DESCRIPTION, aws_managed_backup_keys
from scanner.sandbox_data import policies
from scanner.sandbox_data.layout import (
    ACCOUNT_PLANS,
    BROKEN_BY_DRIFT,
    CENTRAL,
    ORG_UNITS,
    AccountPlan,
    Expectation,
)

DEFAULT_REGIONS = ("us-east-1", "eu-west-1")
READ_ROLE_NAME = "VaultscanReadRole"
ADMIN_ROLE_NAME = "OrganizationAccountAccessRole"
BACKUP_ROLE_NAME = "BackupOperator"
BACKUP_ROLE_PATH = "/backup/"
VAULT_KEY_ALIAS = "alias/backup-vault-key"
AWS_BACKUP_KEY_ALIAS = "alias/aws/backup"  # the fallback: AWS Backup's AWS managed key
SCP = "SERVICE_CONTROL_POLICY"
RCP = "RESOURCE_CONTROL_POLICY"
FULL_AWS_ACCESS = "p-FullAWSAccess"
CENTRAL_OWNER = "security-keys"  # the account holding the central vault key
CENTRAL_VAULT = "central-backups"
KEY_STATE = "kms:KeyState"


@dataclass
class SandboxRole:
    name: str
    arn: str
    expectation: Expectation


@dataclass
class SandboxAccount:
    account_id: str
    name: str
    ou_names: tuple[str, ...]  # root first, e.g. ("Root", "Workloads", "Prod")
    expectation: Expectation  # of BackupOperator; for a multi-role account, of the failing role
    role_arn: str = ""
    key_arns: dict[str, str] = field(default_factory=dict)  # region -> vault key ARN
    roles: list[SandboxRole] = field(default_factory=list)  # every designated role
    central_vault: bool = False  # a vault of the account uses the central key

    def check_count(self, regions: int, actions: int = 7, key_actions: int = 5) -> int:
        """How many checks a scan makes for the account: per region and role, every
        action of the profile (and the key actions on the central key), plus the state
        of each key."""
        keys = 2 if self.central_vault else 1
        per_role = actions + (key_actions if self.central_vault else 0)
        return regions * (len(self.roles) * per_role + keys)

    @property
    def healthy(self) -> bool:
        return all(role.expectation.healthy for role in self.roles) and (self.expectation.healthy)

    def failing(self, region: str) -> set[str]:
        """The checks that must fail in `region` (the same in every sandbox region)."""
        return {check for role in self.roles for check in role.expectation.failing_checks}

    def role_failing(self, role_arn: str) -> set[str]:
        """The role's own checks that must fail (key-state checks belong to no role)."""
        role = next(role for role in self.roles if role.arn == role_arn)
        return {c for c in role.expectation.failing_checks if not c.startswith(KEY_STATE)}

    def key_state_failing(self) -> set[str]:
        return {c for c in self.expectation.failing_checks if c.startswith(KEY_STATE)}

    def role(self, role_arn: str) -> SandboxRole:
        return next(role for role in self.roles if role.arn == role_arn)


@dataclass
class SandboxOrg:
    management_account_id: str
    organization_id: str
    root_id: str
    regions: tuple[str, ...]
    accounts: list[SandboxAccount]
    ou_ids: dict[str, str]  # OU name -> id
    policy_ids: dict[str, str] = field(default_factory=dict)  # SCP/RCP name -> id
    seed_seconds: float = 0.0
    central_key_arns: dict[str, str] = field(default_factory=dict)  # region -> key ARN

    def account(self, account_id: str) -> SandboxAccount:
        for account in self.accounts:
            if account.account_id == account_id:
                return account
        raise KeyError(f"account {account_id} is not in the sandbox")

    def by_name(self, name: str) -> SandboxAccount:
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(f"no sandbox account named {name!r}")

    def by_cause(self, cause: str) -> SandboxAccount:
        for account in self.accounts:
            causes = {account.expectation.cause, *(r.expectation.cause for r in account.roles)}
            if cause in causes:
                return account
        raise KeyError(f"no sandbox account with cause {cause!r}")

    def check_count(self, account_ids: set[str] | None = None) -> int:
        """How many checks a scan of the sandbox (or of `account_ids`) makes."""
        return sum(
            account.check_count(len(self.regions))
            for account in self.accounts
            if account_ids is None or account.account_id in account_ids
        )

    @property
    def healthy_accounts(self) -> list[SandboxAccount]:
        return [account for account in self.accounts if account.healthy]


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document)


class _Seeder:
    """Holds the session and the organization ids while seeding."""

    def __init__(self, session: boto3.Session, regions: tuple[str, ...]) -> None:
        self.session = session
        self.regions = regions
        self.home = regions[0]
        self.org = session.client("organizations", region_name=self.home)
        self.sts = session.client("sts", region_name=self.home)
        self._credentials: dict[str, dict[str, Any]] = {}

    def member_client(self, account_id: str, service: str, region: str) -> Any:
        credentials = self._credentials.get(account_id)
        if credentials is None:
            credentials = self.sts.assume_role(
                RoleArn=f"arn:aws:iam::{account_id}:role/{ADMIN_ROLE_NAME}",
                RoleSessionName="vaultscan-sandbox-seed",
            )["Credentials"]
            self._credentials[account_id] = credentials
        return self.session.client(
            service,
            region_name=region,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )

    def create_policy(self, name: str, kind: str, document: dict[str, Any], about: str) -> str:
        return self.org.create_policy(
            Name=name, Description=about, Type=kind, Content=_dump(document)
        )["Policy"]["PolicySummary"]["Id"]


def seed_sandbox_organization(
    session: boto3.Session, *, regions: tuple[str, ...] = DEFAULT_REGIONS
) -> SandboxOrg:
    """Create the sandbox organization; returns it with every account's expected verdict."""
    started = time.perf_counter()
    seeder = _Seeder(session, tuple(regions))
    org = seeder.org
    description = org.create_organization(FeatureSet="ALL")["Organization"]
    management_id = description["MasterAccountId"]
    root_id = org.list_roots()["Roots"][0]["Id"]
    for kind in (SCP, RCP):
        org.enable_policy_type(RootId=root_id, PolicyType=kind)

    ou_ids: dict[str, str] = {}
    for name, parent in ORG_UNITS.items():
        parent_id = ou_ids[parent] if parent else root_id
        ou_ids[name] = org.create_organizational_unit(ParentId=parent_id, Name=name)[
            "OrganizationalUnit"
        ]["Id"]

    sandbox = SandboxOrg(
        management_account_id=management_id,
        organization_id=description["Id"],
        root_id=root_id,
        regions=tuple(regions),
        accounts=[],
        ou_ids=ou_ids,
    )
    for plan in ACCOUNT_PLANS:
        sandbox.accounts.append(_create_account(seeder, sandbox, plan))
    _plant_organization_policies(seeder, sandbox)
    _seed_central_key(seeder, sandbox)
    for account in sandbox.accounts:
        _seed_member(seeder, sandbox, account)
    sandbox.seed_seconds = time.perf_counter() - started
    return sandbox


def _ou_names(ou: str) -> tuple[str, ...]:
    chain = [ou]
    while (parent := ORG_UNITS[chain[-1]]) is not None:
        chain.append(parent)
    return ("Root", *reversed(chain))


SANDBOX_OWNER_TAG = "team"


def _create_account(seeder: _Seeder, sandbox: SandboxOrg, plan: AccountPlan) -> SandboxAccount:
    status = seeder.org.create_account(
        AccountName=plan.name,
        Email=f"{plan.name}@example.com",
        # who owns it: what report.owner_tag: team groups by
        Tags=[{"Key": SANDBOX_OWNER_TAG, "Value": f"team-{plan.ou.lower()}"}],
    )["CreateAccountStatus"]
    account_id = status["AccountId"]
    seeder.org.move_account(
        AccountId=account_id,
        SourceParentId=sandbox.root_id,
        DestinationParentId=sandbox.ou_ids[plan.ou],
    )
    role_arn = f"arn:aws:iam::{account_id}:role{BACKUP_ROLE_PATH}{BACKUP_ROLE_NAME}"
    roles = [SandboxRole(BACKUP_ROLE_NAME, role_arn, plan.expectation)]
    roles += [
        SandboxRole(
            extra.name, f"arn:aws:iam::{account_id}:role{extra.path}{extra.name}", extra.expectation
        )
        for extra in plan.extra_roles
    ]
    failing = [role.expectation for role in roles if not role.expectation.healthy]
    return SandboxAccount(
        account_id=account_id,
        name=plan.name,
        ou_names=_ou_names(plan.ou),
        expectation=failing[0] if failing else plan.expectation,
        role_arn=role_arn,
        roles=roles,
        central_vault=plan.central_vault,
    )


def _plan(account: SandboxAccount) -> AccountPlan:
    return next(plan for plan in ACCOUNT_PLANS if plan.name == account.name)


def _plant_organization_policies(seeder: _Seeder, sandbox: SandboxOrg) -> None:
    """The SCP and RCP causes: each one targets only the OU or account that plants it."""
    org = seeder.org
    deny_id = seeder.create_policy(
        "DenyBackupVaultCreation",
        SCP,
        policies.scp_deny_vault_creation(),
        "Legacy workloads must not create new backup vaults",
    )
    org.attach_policy(PolicyId=deny_id, TargetId=sandbox.ou_ids["Legacy"])

    allow_id = seeder.create_policy(
        "SandboxAllowedServices",
        SCP,
        policies.scp_allow_list_without_backup_storage(),
        "Services sandbox accounts may use",
    )
    org.attach_policy(PolicyId=allow_id, TargetId=sandbox.ou_ids["Sandbox"])
    org.detach_policy(PolicyId=FULL_AWS_ACCESS, TargetId=sandbox.ou_ids["Sandbox"])

    rcp_id = seeder.create_policy(
        "DenyKmsGrantCreation",
        RCP,
        policies.rcp_deny_grant_creation(),
        "No KMS grants on this account's keys",
    )
    org.attach_policy(PolicyId=rcp_id, TargetId=sandbox.by_cause("rcp-deny").account_id)
    # the same RCP where the only vault key is AWS managed: it does not apply there
    org.attach_policy(
        PolicyId=rcp_id, TargetId=sandbox.by_cause("aws-managed-key-under-rcp").account_id
    )
    sandbox.policy_ids.update(
        {
            "DenyBackupVaultCreation": deny_id,
            "SandboxAllowedServices": allow_id,
            "DenyKmsGrantCreation": rcp_id,
        }
    )
    _plant_real_world_policies(seeder, sandbox)


def _plant_real_world_policies(seeder: _Seeder, sandbox: SandboxOrg) -> None:
    """The perimeter RCP on every key, the central key owner's RCP, the path exception."""
    org = seeder.org
    owner = sandbox.by_name(CENTRAL_OWNER).account_id
    workloads = f"{sandbox.organization_id}/{sandbox.root_id}/{sandbox.ou_ids['Workloads']}/"
    planted = {
        "KeyPerimeter": (
            RCP,
            policies.rcp_key_perimeter(sandbox.organization_id),
            "Only identities of the organization may use its keys",
            sandbox.root_id,
        ),
        "CentralKeysForWorkloads": (
            RCP,
            policies.rcp_central_keys_for_workloads(workloads, owner),
            "Central keys serve the Workloads OU only",
            owner,
        ),
        "DenyVaultCreationOutsideBackupPath": (
            SCP,
            policies.scp_deny_vault_creation_outside_backup_path(),
            "Only roles under /backup/ create vaults",
            sandbox.by_cause("scp-exception-by-principal-arn").account_id,
        ),
    }
    for name, (kind, document, about, target) in planted.items():
        policy_id = seeder.create_policy(name, kind, document, about)
        org.attach_policy(PolicyId=policy_id, TargetId=target)
        sandbox.policy_ids[name] = policy_id


def _seed_central_key(seeder: _Seeder, sandbox: SandboxOrg) -> None:
    """A multi-Region key in the security account (the same key id in every region, so
    its checks read alike everywhere), listing the accounts allowed to use it."""
    owner = sandbox.by_name(CENTRAL_OWNER)
    allowed = [
        sandbox.by_cause(cause).account_id
        for cause in ("central-key-allowed", "central-key-blocked-by-owner-rcp")
    ]
    kms = seeder.member_client(owner.account_id, "kms", seeder.home)
    metadata = kms.create_key(
        Description="Central AWS Backup vault key",
        MultiRegion=True,
        Policy=_dump(policies.central_key_policy(owner.account_id, allowed)),
        Tags=[{"TagKey": "purpose", "TagValue": "central-backup-vault"}],
    )["KeyMetadata"]
    sandbox.central_key_arns[seeder.home] = metadata["Arn"]
    for region in seeder.regions[1:]:
        replica = kms.replicate_key(KeyId=metadata["KeyId"], ReplicaRegion=region)
        sandbox.central_key_arns[region] = replica["ReplicaKeyMetadata"]["Arn"]
    label = metadata["KeyId"]
    for account in sandbox.accounts:
        account.expectation = _with_central(account.expectation, label)
        for role in account.roles:
            role.expectation = _with_central(role.expectation, label)


def _with_central(expectation: Expectation, label: str) -> Expectation:
    checks = tuple(check.replace(CENTRAL, label) for check in expectation.failing_checks)
    return replace(expectation, failing_checks=checks)


def _seed_member(seeder: _Seeder, sandbox: SandboxOrg, account: SandboxAccount) -> None:
    cause = _plan(account).expectation.cause
    account_id = account.account_id
    iam = seeder.member_client(account_id, "iam", seeder.home)

    iam.create_role(
        RoleName=READ_ROLE_NAME,
        AssumeRolePolicyDocument=_dump(policies.read_role_trust(sandbox.management_account_id)),
        Description="Read-only role vaultscan assumes from the management account",
    )
    iam.put_role_policy(
        RoleName=READ_ROLE_NAME,
        PolicyName="VaultscanRead",
        PolicyDocument=_dump(policies.read_role_permissions()),
    )
    iam.create_role(
        RoleName="KeyAdmin",
        AssumeRolePolicyDocument=_dump(policies.read_role_trust(sandbox.management_account_id)),
    )

    boundary_arn = None
    if cause in ("boundary-missing-create-grant", "healthy-with-boundary"):
        document = (
            policies.boundary_without_create_grant()
            if cause == "boundary-missing-create-grant"
            else policies.full_boundary()
        )
        boundary_arn = iam.create_policy(
            PolicyName="BackupBoundary", PolicyDocument=_dump(document)
        )["Policy"]["Arn"]
    plan = _plan(account)
    key_access_arn = iam.create_policy(
        PolicyName="VaultKeyAccess",
        PolicyDocument=_dump(
            policies.vault_key_access(account_id, sandbox.by_name(CENTRAL_OWNER).account_id)
        ),
    )["Policy"]["Arn"]
    roles = [(BACKUP_ROLE_NAME, BACKUP_ROLE_PATH, plan.role_tags)]
    roles += [(extra.name, extra.path, extra.tags) for extra in plan.extra_roles]
    for name, path, tags in roles:
        role_args: dict[str, Any] = {
            "RoleName": name,
            "Path": path,
            "AssumeRolePolicyDocument": _dump(
                policies.backup_role_trust(sandbox.management_account_id)
            ),
            "Description": "Designated role that creates AWS Backup vaults",
            "Tags": [
                {"Key": "vaultscan:designated", "Value": "backup"},
                *({"Key": key, "Value": value} for key, value in tags),
            ],
        }
        if boundary_arn:
            role_args["PermissionsBoundary"] = boundary_arn
        iam.create_role(**role_args)
        iam.put_role_policy(
            RoleName=name,
            PolicyName="BackupVaults",
            PolicyDocument=_dump(
                policies.vault_backup_statements(
                    account_id, wildcard_backup=cause == "identity-missing-mount-capsule"
                )
            ),
        )
        iam.attach_role_policy(RoleName=name, PolicyArn=key_access_arn)

    for region in seeder.regions:
        account.key_arns[region] = _seed_vault_key(seeder, account, region)
        if plan.central_vault:
            seeder.member_client(account_id, "backup", region).create_backup_vault(
                BackupVaultName=CENTRAL_VAULT,
                EncryptionKeyArn=sandbox.central_key_arns[region],
            )


def _key_policy(account: SandboxAccount) -> dict[str, Any]:
    cause = _plan(account).expectation.cause
    if cause == "key-policy-without-root":
        return policies.key_policy_without_root(account.account_id)
    if cause == "key-policy-deny":
        return policies.key_policy_denying_grants(account.account_id, account.role_arn)
    if cause == "key-policy-principal-tag":
        return policies.key_policy_principal_tag(account.account_id)
    if cause == "key-policy-caller-account":
        return policies.key_policy_caller_account(account.account_id)
    return policies.default_key_policy(account.account_id)


def _seed_vault_key(seeder: _Seeder, account: SandboxAccount, region: str) -> str:
    kms = seeder.member_client(account.account_id, "kms", region)
    if _plan(account).expectation.cause == "aws-managed-key-under-rcp":
        return _seed_aws_backup_key(kms, account, region)
    metadata = kms.create_key(
        Description="AWS Backup vault key",
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Policy=_dump(_key_policy(account)),
        Tags=[{"TagKey": "purpose", "TagValue": "backup-vault"}],
    )["KeyMetadata"]
    key_id = metadata["KeyId"]
    kms.create_alias(AliasName=VAULT_KEY_ALIAS, TargetKeyId=key_id)
    if _plan(account).expectation.cause == "key-disabled":
        kms.disable_key(KeyId=key_id)
    elif _plan(account).expectation.cause == "key-pending-deletion":
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=30)
    return metadata["Arn"]


def _seed_aws_backup_key(kms: Any, account: SandboxAccount, region: str) -> str:
    """aws/backup as AWS creates it on first use: an AWS managed key with its own policy.
    moto creates every key as customer managed; with AWS Backup's description it is made
    AWS managed (scanner.sandbox_aws), and vaultscan reads that back through DescribeKey
    like any other key."""
    aws_managed_backup_keys()  # moto in this process; a moto server marks its own
    metadata = kms.create_key(
        Description=AWS_BACKUP_KEY_DESCRIPTION,
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Policy=_dump(policies.aws_backup_key_policy(account.account_id, region)),
    )["KeyMetadata"]
    if metadata.get("KeyManager") != "AWS":
        raise RuntimeError(
            "the sandbox's moto server makes every key customer managed: start it with "
            "`python -m scanner.sandbox_aws` instead of `python -m moto.server`"
        )
    kms.create_alias(AliasName=AWS_BACKUP_KEY_ALIAS, TargetKeyId=metadata["KeyId"])
    return metadata["Arn"]


def break_account(session: boto3.Session, sandbox: SandboxOrg, account_id: str) -> Expectation:
    """Drift: attach an inline Deny on backup:CreateBackupVault to a healthy account's role.

    Returns the new expectation and records it on the sandbox account.
    """
    account = sandbox.account(account_id)
    if not account.healthy:
        raise ValueError(f"account {account_id} ({account.name}) already has a planted cause")
    seeder = _Seeder(session, sandbox.regions)
    iam = seeder.member_client(account_id, "iam", seeder.home)
    iam.put_role_policy(
        RoleName=BACKUP_ROLE_NAME,
        PolicyName="EmergencyFreeze",
        PolicyDocument=_dump(policies.emergency_deny()),
    )
    account.expectation = BROKEN_BY_DRIFT
    account.roles[0].expectation = BROKEN_BY_DRIFT
    return BROKEN_BY_DRIFT


def repair_account(session: boto3.Session, sandbox: SandboxOrg, account_id: str) -> Expectation:
    """Undo `break_account`: remove the inline Deny; the account is healthy again."""
    account = sandbox.account(account_id)
    if account.expectation is not BROKEN_BY_DRIFT:
        raise ValueError(f"account {account_id} ({account.name}) was not broken by break_account")
    seeder = _Seeder(session, sandbox.regions)
    iam = seeder.member_client(account_id, "iam", seeder.home)
    iam.delete_role_policy(RoleName=BACKUP_ROLE_NAME, PolicyName="EmergencyFreeze")
    plan = _plan(account)
    account.expectation = plan.expectation
    account.roles[0].expectation = plan.expectation
    return plan.expectation


def sandbox_settings(sandbox: SandboxOrg, **overrides: Any) -> Settings:
    """Settings that scan the sandbox: its regions, read role, backup role and vault key."""
    values: dict[str, Any] = {
        "regions": list(sandbox.regions),
        "member": {"read_role_name": READ_ROLE_NAME},
        "roles": {"names": [f"{BACKUP_ROLE_NAME}*"], "path": BACKUP_ROLE_PATH},
        "keys": {"default": [VAULT_KEY_ALIAS, AWS_BACKUP_KEY_ALIAS]},
        "simulator": "engine",
        "organization": {"region": sandbox.regions[0]},
        "concurrency": 4,
    }
    values.update(overrides)
    # built directly: a vaultscan.yaml in the working directory must not leak in
    return Settings(**values)
