"""Answers of the fake AWS, per service and operation, from a FakeOrg.

Only the operations vaultscan calls (scanner/aws/permissions.py), plus
iam:GetAccountAuthorizationDetails. Pages are as small as AWS makes them (Organizations
lists at most 20 items a page)."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from typing import Any

from fakeaws.org import (
    AWS_MANAGED_ARNS,
    AWS_MANAGED_POLICY,
    BOUNDARY_POLICY,
    CUSTOMER_POLICY,
    FULL_ACCESS_ID,
    INLINE_POLICY,
    KEY_ALIAS,
    MANAGEMENT_ACCOUNT,
    ORG_ID,
    PLAIN_ROLES,
    READ_ROLE,
    ROOT_ID,
    TRUST_POLICY,
    FakeOrg,
    encoded,
    key_policy,
)
from fakeaws.protocol import AwsError

CREATED = "2024-03-01T10:00:00Z"
ORG_PAGE = 20  # Organizations' largest MaxResults


def _page(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    start = int(token or 0)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _org_page_size(params: dict[str, Any]) -> int:
    return max(1, min(ORG_PAGE, int(params.get("MaxResults") or ORG_PAGE)))


def _org_listing(
    key: str, items: list[Any], params: dict[str, Any], render: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """One page of an Organizations List* answer, paged by MaxResults and NextToken."""
    page, token = _page(items, params.get("NextToken"), _org_page_size(params))
    return {key: [render(item) for item in page], **({"NextToken": token} if token else {})}


def _account(account: str) -> dict[str, Any]:
    return {
        "Id": account,
        "Arn": f"arn:aws:organizations::{MANAGEMENT_ACCOUNT}:account/{ORG_ID}/{account}",
        "Email": f"aws+{account}@example.com",
        "Name": f"workload-{account}",
        "Status": "ACTIVE",
        "State": "ACTIVE",
        "JoinedMethod": "CREATED",
        "JoinedTimestamp": 1700000000,
    }


def _target(target: tuple[str, str]) -> dict[str, Any]:
    target_id, kind = target
    return {
        "TargetId": target_id,
        "Arn": f"arn:aws:organizations::x:{target_id}",
        "Name": target_id,
        "Type": kind,
    }


class Organizations:
    def __init__(self, org: FakeOrg) -> None:
        self.org = org

    @cached_property
    def policies_by_target(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for policy_id, targets in self.org.scp_targets.items():
            for target_id, _kind in targets:
                out.setdefault(target_id, []).append(policy_id)
        return out

    def _summary(self, policy_id: str) -> dict[str, Any]:
        name, _content = self.org.policy_content(policy_id)
        return {
            "Id": policy_id,
            "Arn": f"arn:aws:organizations::{MANAGEMENT_ACCOUNT}:policy/{ORG_ID}/"
            f"service_control_policy/{policy_id}",
            "Name": name,
            "Description": name,
            "Type": "SERVICE_CONTROL_POLICY",
            "AwsManaged": policy_id == FULL_ACCESS_ID,
        }

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, f"op_{operation}", None
        )
        if handler is None:
            raise AwsError("InvalidAction", f"organizations:{operation} is not faked")
        return handler(params)

    def op_DescribeOrganization(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "Organization": {
                "Id": ORG_ID,
                "Arn": f"arn:aws:organizations::{MANAGEMENT_ACCOUNT}:organization/{ORG_ID}",
                "FeatureSet": "ALL",
                "MasterAccountArn": f"arn:aws:organizations::{MANAGEMENT_ACCOUNT}:account/"
                f"{ORG_ID}/{MANAGEMENT_ACCOUNT}",
                "MasterAccountId": MANAGEMENT_ACCOUNT,
                "MasterAccountEmail": "management@example.com",
            }
        }

    def op_ListRoots(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "Roots": [
                {
                    "Id": ROOT_ID,
                    "Arn": f"arn:aws:organizations::{MANAGEMENT_ACCOUNT}:root/{ORG_ID}/{ROOT_ID}",
                    "Name": "Root",
                    "PolicyTypes": [{"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"}],
                }
            ]
        }

    def op_ListOrganizationalUnitsForParent(self, params: dict[str, Any]) -> dict[str, Any]:
        children = self.org.children.get(params["ParentId"])
        if children is None:
            raise AwsError("ParentNotFoundException", "no such parent")
        return _org_listing("OrganizationalUnits", children, params, self._unit)

    def _unit(self, unit_id: str) -> dict[str, Any]:
        return {
            "Id": unit_id,
            "Arn": f"arn:aws:organizations::{MANAGEMENT_ACCOUNT}:ou/{ORG_ID}/{unit_id}",
            "Name": self.org.unit_by_id[unit_id].name,
        }

    def op_ListAccountsForParent(self, params: dict[str, Any]) -> dict[str, Any]:
        accounts = self.org.accounts_by_parent.get(params["ParentId"])
        if accounts is None:
            raise AwsError("ParentNotFoundException", "no such parent")
        return _org_listing("Accounts", accounts, params, _account)

    def op_ListPolicies(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("Filter") != "SERVICE_CONTROL_POLICY":
            return {"Policies": []}
        return _org_listing("Policies", list(self.org.scp_targets), params, self._summary)

    def op_ListTargetsForPolicy(self, params: dict[str, Any]) -> dict[str, Any]:
        targets = self.org.scp_targets.get(params["PolicyId"])
        if targets is None:
            raise AwsError("PolicyNotFoundException", "no such policy")
        return _org_listing("Targets", targets, params, _target)

    def op_ListPoliciesForTarget(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("Filter") != "SERVICE_CONTROL_POLICY":
            return {"Policies": []}
        ids = self.policies_by_target.get(params["TargetId"], [])
        return _org_listing("Policies", ids, params, self._summary)

    def op_DescribePolicy(self, params: dict[str, Any]) -> dict[str, Any]:
        policy_id = params["PolicyId"]
        if policy_id not in self.org.scp_targets:
            raise AwsError("PolicyNotFoundException", "no such policy")
        _name, content = self.org.policy_content(policy_id)
        return {"Policy": {"PolicySummary": self._summary(policy_id), "Content": content}}


class Iam:
    def __init__(self, org: FakeOrg) -> None:
        self.org = org

    def call(self, operation: str, account: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise AwsError("InvalidAction", f"iam:{operation} is not faked")
        return handler(account, params)

    # --- the account's IAM picture ---------------------------------------------------

    def _role(self, account: str, name: str, path: str = "/") -> dict[str, Any]:
        return {
            "Path": path,
            "RoleName": name,
            "RoleId": f"AROA{account}{len(name):04d}",
            "Arn": f"arn:aws:iam::{account}:role{path}{name}",
            "CreateDate": CREATED,
            "AssumeRolePolicyDocument": encoded(TRUST_POLICY, account),
            "MaxSessionDuration": 3600,
        }

    def _roles(self, account: str) -> list[dict[str, Any]]:
        roles = [self._role(account, f"app-{n}", "/application/") for n in range(PLAIN_ROLES)]
        roles.append(self._role(account, READ_ROLE))
        roles.append(
            self._role(
                account, "AWSServiceRoleForBackup", "/aws-service-role/backup.amazonaws.com/"
            )
        )
        roles += [self._role(account, name) for name in self.org.designated(account)]
        return sorted(roles, key=lambda role: role["RoleName"])

    def _attached(self, account: str, name: str) -> list[dict[str, str]]:
        customer, _boundary = self.org.customer_policy_arns(account)
        aws_managed = AWS_MANAGED_ARNS[len(name) % len(AWS_MANAGED_ARNS)]
        return [
            {"PolicyName": customer.rsplit("/", 1)[1], "PolicyArn": customer},
            {"PolicyName": aws_managed.rsplit("/", 1)[1], "PolicyArn": aws_managed},
        ]

    def _designated_or_missing(self, account: str, name: str) -> None:
        if name not in self.org.designated(account):
            raise AwsError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)

    def _document(self, account: str, arn: str) -> str:
        customer, boundary = self.org.customer_policy_arns(account)
        if arn == customer:
            return CUSTOMER_POLICY
        if arn == boundary:
            return BOUNDARY_POLICY
        if arn in AWS_MANAGED_ARNS:
            return AWS_MANAGED_POLICY
        raise AwsError("NoSuchEntity", f"Policy {arn} does not exist.", 404)

    # --- operations -------------------------------------------------------------------

    def op_ListRoles(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        size = int(params.get("MaxItems") or 100)
        page, marker = _page(self._roles(account), params.get("Marker"), size)
        return {
            "Roles": page,
            "IsTruncated": marker is not None,
            **({"Marker": marker} if marker else {}),
        }

    def op_ListRoleTags(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"Tags": [], "IsTruncated": False}

    def op_GetRole(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        name = params["RoleName"]
        self._designated_or_missing(account, name)
        role = self._role(account, name)
        role["PermissionsBoundary"] = {
            "PermissionsBoundaryType": "Policy",
            "PermissionsBoundaryArn": self.org.customer_policy_arns(account)[1],
        }
        role["Tags"] = [{"Key": "team", "Value": "backup"}]
        return {"Role": role}

    def op_ListRolePolicies(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        self._designated_or_missing(account, params["RoleName"])
        return {"PolicyNames": ["BackupInline"], "IsTruncated": False}

    def op_GetRolePolicy(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        self._designated_or_missing(account, params["RoleName"])
        return {
            "RoleName": params["RoleName"],
            "PolicyName": params["PolicyName"],
            "PolicyDocument": encoded(INLINE_POLICY, account),
        }

    def op_ListAttachedRolePolicies(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        self._designated_or_missing(account, params["RoleName"])
        return {
            "AttachedPolicies": self._attached(account, params["RoleName"]),
            "IsTruncated": False,
        }

    def op_GetPolicy(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["PolicyArn"]
        self._document(account, arn)
        return {
            "Policy": {
                "PolicyName": arn.rsplit("/", 1)[1],
                "PolicyId": f"ANPA{abs(hash(arn)) % 10**12:012d}",
                "Arn": arn,
                "Path": "/",
                "DefaultVersionId": "v3",
                "AttachmentCount": 2,
                "IsAttachable": True,
                "CreateDate": CREATED,
                "UpdateDate": CREATED,
            }
        }

    def op_GetPolicyVersion(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        document = self._document(account, params["PolicyArn"])
        return {
            "PolicyVersion": {
                "Document": encoded(document, account),
                "VersionId": params["VersionId"],
                "IsDefaultVersion": True,
                "CreateDate": CREATED,
            }
        }

    def op_SimulatePrincipalPolicy(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        from fakeaws.protocol import member_list

        results = [
            {
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": "allowed",
                "MatchedStatements": [],
                "MissingContextValues": [],
                "OrganizationsDecisionDetail": {"AllowedByOrganizations": True},
            }
            for action in member_list(params, "ActionNames")
            for resource in member_list(params, "ResourceArns") or ["*"]
        ]
        return {"EvaluationResults": results, "IsTruncated": False}

    def op_GetAccountAuthorizationDetails(
        self, account: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        from fakeaws.protocol import member_list

        kinds = set(member_list(params, "Filter")) or {"Role", "LocalManagedPolicy"}
        items: list[tuple[str, dict[str, Any]]] = []
        if "Role" in kinds:
            items += [("role", self._role_detail(account, role)) for role in self._roles(account)]
        if "LocalManagedPolicy" in kinds:
            items += [
                ("policy", self._local_policy(account, arn))
                for arn in self.org.customer_policy_arns(account)
            ]
        size = int(params.get("MaxItems") or 100)
        page, marker = _page(items, params.get("Marker"), size)
        return {
            "RoleDetailList": [item for kind, item in page if kind == "role"],
            "Policies": [item for kind, item in page if kind == "policy"],
            "IsTruncated": marker is not None,
            **({"Marker": marker} if marker else {}),
        }

    def _role_detail(self, account: str, role: dict[str, Any]) -> dict[str, Any]:
        detail = dict(role)
        name = role["RoleName"]
        designated = name in self.org.designated(account)
        detail["InstanceProfileList"] = []
        detail["RolePolicyList"] = [
            {
                "PolicyName": "BackupInline" if designated else "AppInline",
                "PolicyDocument": encoded(INLINE_POLICY, account),
            }
        ]
        detail["AttachedManagedPolicies"] = self._attached(account, name) if designated else []
        if designated:
            detail["PermissionsBoundary"] = {
                "PermissionsBoundaryType": "Policy",
                "PermissionsBoundaryArn": self.org.customer_policy_arns(account)[1],
            }
            detail["Tags"] = [{"Key": "team", "Value": "backup"}]
        return detail

    def _local_policy(self, account: str, arn: str) -> dict[str, Any]:
        document = encoded(self._document(account, arn), account)
        return {
            "PolicyName": arn.rsplit("/", 1)[1],
            "PolicyId": f"ANPA{abs(hash(arn)) % 10**12:012d}",
            "Arn": arn,
            "Path": "/",
            "DefaultVersionId": "v3",
            "AttachmentCount": 2,
            "IsAttachable": True,
            "CreateDate": CREATED,
            "UpdateDate": CREATED,
            "PolicyVersionList": [
                {
                    "Document": document,
                    "VersionId": "v3",
                    "IsDefaultVersion": True,
                    "CreateDate": CREATED,
                },
                {
                    "Document": document,
                    "VersionId": "v2",
                    "IsDefaultVersion": False,
                    "CreateDate": CREATED,
                },
            ],
        }


class Sts:
    def __init__(self, org: FakeOrg) -> None:
        self.org = org

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation != "AssumeRole":
            raise AwsError("InvalidAction", f"sts:{operation} is not faked")
        arn = params.get("RoleArn", "")
        parts = arn.split(":")
        account = parts[4] if len(parts) > 5 else ""
        known = self.org.is_member(account) or account == MANAGEMENT_ACCOUNT
        if not known or not parts[5].endswith(f"/{READ_ROLE}"):
            raise AwsError(
                "AccessDenied", f"not authorized to perform sts:AssumeRole on {arn}", 403
            )
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{account}",
                "SecretAccessKey": "fake-secret",
                "SessionToken": f"fake-token-{account}",
                "Expiration": "2099-01-01T00:00:00Z",
            },
            "AssumedRoleUser": {
                "AssumedRoleId": f"AROA{account}:{params.get('RoleSessionName', '')}",
                "Arn": f"arn:aws:sts::{account}:assumed-role/{READ_ROLE}/"
                f"{params.get('RoleSessionName', '')}",
            },
        }


class Kms:
    def __init__(self, org: FakeOrg) -> None:
        self.org = org

    def call(self, operation: str, account: str, region: str, params: dict[str, Any]) -> dict:
        number = self.org.find_key(account, region, params.get("KeyId", ""))
        if number is None:
            raise AwsError("NotFoundException", f"Key '{params.get('KeyId')}' does not exist")
        arn = self.org.key_arn(account, region, number)
        if operation == "DescribeKey":
            return {
                "KeyMetadata": {
                    "AWSAccountId": account,
                    "KeyId": self.org.key_id(account, region, number),
                    "Arn": arn,
                    "CreationDate": 1700000000,
                    "Enabled": True,
                    "KeyUsage": "ENCRYPT_DECRYPT",
                    "KeyState": "Enabled",
                    "Origin": "AWS_KMS",
                    "KeyManager": "CUSTOMER",
                    "KeySpec": "SYMMETRIC_DEFAULT",
                    "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
                    "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
                    "MultiRegion": False,
                }
            }
        if operation == "GetKeyPolicy":
            policy = key_policy(account, self.org.designated(account))
            return {"Policy": policy, "PolicyName": "default"}
        if operation == "ListGrants":
            grants = [
                {
                    "KeyId": arn,
                    "GrantId": f"{'ab' * 32}{n}",
                    "Name": f"backup-grant-{n}",
                    "CreationDate": 1700000000,
                    "GranteePrincipal": "backup.amazonaws.com",
                    "IssuingAccount": f"arn:aws:iam::{account}:root",
                    "Operations": ["Decrypt", "GenerateDataKey", "RetireGrant"],
                }
                for n in range(2)
            ]
            return {"Grants": grants, "Truncated": False}
        if operation == "ListResourceTags":
            tags = [
                {"TagKey": "purpose", "TagValue": "backup"},
                {"TagKey": "team", "TagValue": "ops"},
            ]
            return {"Tags": tags, "Truncated": False}
        raise AwsError("InvalidAction", f"kms:{operation} is not faked")


class Backup:
    def __init__(self, org: FakeOrg) -> None:
        self.org = org

    def list_backup_vaults(self, account: str, region: str) -> dict[str, Any]:
        names = ["main", "archive"]
        vaults = [
            {
                "BackupVaultName": names[number - 1],
                "BackupVaultArn": f"arn:aws:backup:{region}:{account}:backup-vault:"
                f"{names[number - 1]}",
                "EncryptionKeyArn": self.org.key_arn(account, region, number),
                "CreationDate": 1700000000,
                "NumberOfRecoveryPoints": 12,
            }
            for number in range(1, self.org.key_count(account, region) + 1)
        ]
        return {"BackupVaultList": vaults}


def alias_arn(account: str, region: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{KEY_ALIAS}"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
