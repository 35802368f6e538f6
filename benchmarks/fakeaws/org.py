"""A synthetic AWS organization, generated deterministically from a few numbers: N member
accounts spread over M nested OUs, guard-rail SCPs of realistic size on the OUs, and in
every account some ordinary roles, 1-3 designated backup roles (inline policy, a
customer-managed policy, an AWS-managed policy, a permissions boundary) and, per region,
1-2 customer-managed KMS keys used by backup vaults. Everything the designated roles need
is allowed, so a correct scan reports no failing check.

Nothing is stored per account: each answer is built from the account's index when asked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import quote

MANAGEMENT_ACCOUNT = "999999999999"
ORG_ID = "o-fakeorg0001"
ROOT_ID = "r-fk01"
FIRST_ACCOUNT = 200000000000
READ_ROLE = "VaultscanReadRole"
KEY_ALIAS = "alias/vaultscan-backup"
AWS_MANAGED_ARNS = (
    "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/ReadOnlyAccess",
)
DESIGNATED_NAMES = ("BackupOperatorRole", "BackupAdminRole", "BackupAuditRole")
PLAIN_ROLES = 25  # ordinary roles per account, listed but not designated


def _stable(*parts: object) -> int:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _statements(prefix: str, count: int, actions: list[str]) -> list[dict]:
    """`count` realistic statements: varied actions, ARN resources and conditions."""
    out = []
    for index in range(count):
        out.append(
            {
                "Sid": f"{prefix}{index}",
                "Effect": "Allow",
                "Action": [actions[(index + step) % len(actions)] for step in range(4)],
                "Resource": [
                    f"arn:aws:s3:::app-{prefix.lower()}-{index}-bucket",
                    f"arn:aws:s3:::app-{prefix.lower()}-{index}-bucket/*",
                ],
                "Condition": {
                    "StringEquals": {"aws:PrincipalTag/team": f"team-{index % 7}"},
                    "Bool": {"aws:SecureTransport": "true"},
                },
            }
        )
    return out


APP_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "sqs:SendMessage",
    "logs:PutLogEvents",
    "cloudwatch:PutMetricData",
]
BACKUP_ACTIONS = [
    "backup:CreateBackupVault",
    "backup:DescribeBackupVault",
    "backup:ListBackupVaults",
    "backup:StartBackupJob",
    "backup-storage:MountCapsule",
]
KMS_ACTIONS = [
    "kms:CreateGrant",
    "kms:DescribeKey",
    "kms:RetireGrant",
    "kms:Decrypt",
    "kms:GenerateDataKey",
]


def _doc(statements: list[dict]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


# --- policy documents (account id substituted as 111122223333) -----------------------------
ACCOUNT_PLACEHOLDER = "111122223333"

INLINE_POLICY = _doc(
    [
        {
            "Sid": "BackupVaults",
            "Effect": "Allow",
            "Action": BACKUP_ACTIONS,
            "Resource": "*",
        },
        *_statements("Inline", 6, APP_ACTIONS),
    ]
)
CUSTOMER_POLICY = _doc(
    [
        {
            "Sid": "UseBackupKeys",
            "Effect": "Allow",
            "Action": KMS_ACTIONS,
            "Resource": f"arn:aws:kms:*:{ACCOUNT_PLACEHOLDER}:key/*",
        },
        *_statements("Managed", 12, APP_ACTIONS),
    ]
)
BOUNDARY_POLICY = _doc(
    [
        {"Sid": "Everything", "Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Sid": "NoIamWrites",
            "Effect": "Deny",
            "Action": ["iam:CreateUser", "iam:CreateAccessKey", "iam:PutRolePolicy"],
            "Resource": "*",
        },
        {
            "Sid": "NoOrgChanges",
            "Effect": "Deny",
            "Action": ["organizations:*", "account:*"],
            "Resource": "*",
        },
    ]
)
AWS_MANAGED_POLICY = _doc(
    [
        {
            "Sid": "ReadEverything",
            "Effect": "Allow",
            "Action": ["*:Describe*", "*:List*", "*:Get*"],
            "Resource": "*",
        },
        *_statements("AwsManaged", 20, APP_ACTIONS),
    ]
)
TRUST_POLICY = _doc(
    [
        {
            "Effect": "Allow",
            "Principal": {"Service": "backup.amazonaws.com"},
            "Action": "sts:AssumeRole",
        },
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_PLACEHOLDER}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        },
    ]
)


def key_policy(account: str, roles: list[str]) -> str:
    """A realistic key policy: root statement, key administrators, 10 application roles
    with kms:ViaService conditions, and the designated roles for AWS Backup."""
    statements: list[dict] = [
        {
            "Sid": "EnableRoot",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "KeyAdmins",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:role/KeyAdministrator"},
            "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*"],
            "Resource": "*",
        },
    ]
    for index in range(10):
        statements.append(
            {
                "Sid": f"App{index}",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:role/app-{index}"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
            }
        )
    statements.append(
        {
            "Sid": "BackupRoles",
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{account}:role/{name}" for name in roles]},
            "Action": KMS_ACTIONS,
            "Resource": "*",
        }
    )
    return _doc(statements)


def scp_documents(regions: list[str]) -> dict[str, tuple[str, str]]:
    """Guard-rail SCPs, id -> (name, content); all allow what the designated roles need."""
    return {
        "p-denyleave01": (
            "DenyLeaveOrganization",
            _doc(
                [
                    {
                        "Sid": "NoLeave",
                        "Effect": "Deny",
                        "Action": "organizations:LeaveOrganization",
                        "Resource": "*",
                    }
                ]
            ),
        ),
        "p-regionlk01": (
            "RegionLock",
            _doc(
                [
                    {
                        "Sid": "DenyOtherRegions",
                        "Effect": "Deny",
                        "NotAction": [
                            "iam:*",
                            "organizations:*",
                            "route53:*",
                            "cloudfront:*",
                            "sts:*",
                            "support:*",
                            "budgets:*",
                        ],
                        "Resource": "*",
                        "Condition": {"StringNotEquals": {"aws:RequestedRegion": regions}},
                    }
                ]
            ),
        ),
        "p-protect001": (
            "ProtectSecurityTooling",
            _doc(
                [
                    {
                        "Sid": f"Protect{index}",
                        "Effect": "Deny",
                        "Action": [
                            "cloudtrail:StopLogging",
                            "cloudtrail:DeleteTrail",
                            "guardduty:DeleteDetector",
                            "config:DeleteConfigurationRecorder",
                        ],
                        "Resource": "*",
                        "Condition": {
                            "ArnNotLike": {
                                "aws:PrincipalArn": f"arn:aws:iam::*:role/SecurityAdmin{index}"
                            }
                        },
                    }
                    for index in range(8)
                ]
            ),
        ),
        "p-readrole01": (
            "ProtectReadRole",
            _doc(
                [
                    {
                        "Sid": "NoTamper",
                        "Effect": "Deny",
                        "Action": ["iam:DeleteRole", "iam:UpdateAssumeRolePolicy"],
                        "Resource": f"arn:aws:iam::*:role/{READ_ROLE}",
                    }
                ]
            ),
        ),
    }


FULL_ACCESS_ID = "p-FullAWSAccess"
FULL_ACCESS = _doc([{"Effect": "Allow", "Action": "*", "Resource": "*"}])


@dataclass(frozen=True)
class Unit:
    id: str
    name: str
    parent: str
    depth: int


@dataclass
class FakeOrg:
    """N accounts in M OUs (a tree `depth` levels deep), `regions`, designated roles and keys
    per account chosen deterministically (1-3 roles and 1-2 keys unless fixed)."""

    accounts: int
    ous: int
    regions: list[str]
    roles: tuple[int, int] = (2, 2)  # min, max designated roles per account
    keys: tuple[int, int] = (1, 2)  # min, max keys per account and region
    depth: int = 3
    seed: int = 1
    scps: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.accounts < 1 or self.ous < 1:
            raise ValueError("need at least one account and one OU")
        self.scps = scp_documents(self.regions)

    # --- tree -------------------------------------------------------------------------

    @cached_property
    def units(self) -> list[Unit]:
        """M OUs: a few top-level OUs, then each level fans out under the previous one."""
        top = max(1, min(self.ous, round(self.ous ** (1 / self.depth))))
        units: list[Unit] = []
        for index in range(self.ous):
            if index < top:
                parent, depth = ROOT_ID, 1
            else:
                parent_unit = units[(index - top) // max(1, top)]
                parent, depth = parent_unit.id, parent_unit.depth + 1
            units.append(Unit(f"ou-fk01-{index:08x}", f"OU {index}", parent, depth))
        return units

    @cached_property
    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {ROOT_ID: []}
        for unit in self.units:
            out.setdefault(unit.parent, []).append(unit.id)
            out.setdefault(unit.id, [])
        return out

    @cached_property
    def unit_by_id(self) -> dict[str, Unit]:
        return {unit.id: unit for unit in self.units}

    @cached_property
    def accounts_by_parent(self) -> dict[str, list[str]]:
        """Accounts spread round-robin over every OU (none at the root but management)."""
        out: dict[str, list[str]] = {unit.id: [] for unit in self.units}
        out[ROOT_ID] = [MANAGEMENT_ACCOUNT]
        for index in range(self.accounts):
            out[self.units[index % len(self.units)].id].append(self.account_id(index))
        return out

    @staticmethod
    def account_id(index: int) -> str:
        return str(FIRST_ACCOUNT + index)

    def index_of(self, account: str) -> int:
        return int(account) - FIRST_ACCOUNT

    def is_member(self, account: str) -> bool:
        return account.isdigit() and 0 <= self.index_of(account) < self.accounts

    @cached_property
    def scp_targets(self) -> dict[str, list[tuple[str, str]]]:
        """policy id -> [(target id, type)]. FullAWSAccess sits on the root, every OU and
        every account (AWS attaches it by default); guard rails on OUs."""
        every: list[tuple[str, str]] = [(ROOT_ID, "ROOT")]
        every += [(unit.id, "ORGANIZATIONAL_UNIT") for unit in self.units]
        every += [(MANAGEMENT_ACCOUNT, "ACCOUNT")]
        every += [(self.account_id(index), "ACCOUNT") for index in range(self.accounts)]
        top = [unit for unit in self.units if unit.depth == 1]
        second = [unit for unit in self.units if unit.depth == 2]
        return {
            FULL_ACCESS_ID: every,
            "p-denyleave01": [(ROOT_ID, "ROOT")],
            "p-regionlk01": [(unit.id, "ORGANIZATIONAL_UNIT") for unit in top],
            "p-protect001": [(unit.id, "ORGANIZATIONAL_UNIT") for unit in top],
            "p-readrole01": [(unit.id, "ORGANIZATIONAL_UNIT") for unit in second or top],
        }

    def policy_content(self, policy_id: str) -> tuple[str, str]:
        if policy_id == FULL_ACCESS_ID:
            return "FullAWSAccess", FULL_ACCESS
        return self.scps[policy_id]

    # --- per account ------------------------------------------------------------------

    def _pick(self, bounds: tuple[int, int], *parts: object) -> int:
        low, high = bounds
        return low + _stable(self.seed, *parts) % (high - low + 1)

    def designated(self, account: str) -> list[str]:
        return list(DESIGNATED_NAMES[: self._pick(self.roles, "roles", account)])

    def key_count(self, account: str, region: str) -> int:
        return self._pick(self.keys, "keys", account, region)

    def key_id(self, account: str, region: str, number: int) -> str:
        value = _stable(self.seed, "key", account, region, number)
        text = f"{value:016x}{_stable(value):016x}"
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"

    def key_arn(self, account: str, region: str, number: int) -> str:
        return f"arn:aws:kms:{region}:{account}:key/{self.key_id(account, region, number)}"

    def find_key(self, account: str, region: str, reference: str) -> int | None:
        """The key number (1-based) `reference` names in the account, or None."""
        if reference in (KEY_ALIAS, f"arn:aws:kms:{region}:{account}:{KEY_ALIAS}"):
            return 1
        for number in range(1, self.key_count(account, region) + 1):
            key_id = self.key_id(account, region, number)
            if reference in (key_id, self.key_arn(account, region, number)):
                return number
        return None

    def customer_policy_arns(self, account: str) -> tuple[str, str]:
        return (
            f"arn:aws:iam::{account}:policy/BackupOperatorAccess",
            f"arn:aws:iam::{account}:policy/DeveloperBoundary",
        )


def encoded(document: str, account: str) -> str:
    """IAM returns policy documents URL-encoded (RFC 3986)."""
    return quote(document.replace(ACCOUNT_PLACEHOLDER, account), safe="")
