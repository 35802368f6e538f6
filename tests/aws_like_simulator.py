"""A stand-in for iam:SimulatePrincipalPolicy that behaves like AWS's, for moto (which has
no policy simulator).

It is installed as a botocore `before-call` handler on the boto3 session the scan uses,
so vaultscan's real `AwsSimulator` code runs unchanged: botocore validates its request
(ContextKeyType values included) and parses nothing else. What it models, and only that:

- Policies: the role's identity policies (inline and attached), its permissions boundary
  and the SCPs on its account's path, read from IAM and Organizations themselves (never
  from what vaultscan collected). No key policy (no ResourcePolicy parameter is sent)
  and no RCPs: AWS's simulator evaluates neither for SimulatePrincipalPolicy.
- Context: only the `ContextEntries` of the call. Nothing is derived from the request
  (no aws:PrincipalArn, no aws:RequestedRegion, ...). A condition on a key that was not
  sent evaluates as AWS documents for an absent key (IAM JSON policy elements: Condition
  operators: the values do not match, negated operators and ...IfExists match, Null
  true matches), and the key is listed in `MissingContextValues`, as AWS does for
  "context keys that are required by the included input policies but that were not
  provided" (IAM API Reference: EvaluationResult).
- Response: the shape of SimulatePrincipalPolicy (EvaluationResults with EvalActionName,
  EvalResourceName, EvalDecision, MatchedStatements, MissingContextValues,
  OrganizationsDecisionDetail, PermissionsBoundaryDecisionDetail, EvalDecisionDetails
  and ResourceSpecificResults; IsTruncated).

It reuses the engine's matching primitives (the policy grammar's action/resource
matching and the condition operators), fed strictly with the sent context; the layer
combination (explicit deny, then identity AND boundary AND every SCP level) is its own.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from scanner.policy.conditions import condition_matches
from scanner.policy.grammar import CompiledStatement, compile_policy

SCP_TYPE = "SERVICE_CONTROL_POLICY"
ADMIN_ROLE = "OrganizationAccountAccessRole"
_STASH = "aws_like_simulator_params"


@dataclass
class _Principal:
    identity: list[tuple[str, dict[str, Any]]]  # (policy id, document)
    boundary: tuple[str, dict[str, Any]] | None
    scp_levels: list[list[tuple[str, dict[str, Any]]]]  # root first; [] outside SCPs


@dataclass
class _Layer:
    allows: list[tuple[str, CompiledStatement]] = field(default_factory=list)
    denies: list[tuple[str, CompiledStatement]] = field(default_factory=list)


class AwsLikeSimulator:
    """Answers SimulatePrincipalPolicy for every client created from `session` later."""

    def __init__(self, session: boto3.Session, region: str = "us-east-1") -> None:
        # an admin session of its own: boto3 sessions are not safe to share across threads
        credentials = session.get_credentials()
        self._admin = boto3.Session(
            aws_access_key_id=credentials.access_key,
            aws_secret_access_key=credentials.secret_key,
            aws_session_token=credentials.token,
            region_name=region,
        )
        self._lock = threading.Lock()
        self._principals: dict[str, _Principal] = {}
        self.calls: list[dict[str, Any]] = []  # the parameters of every call, as sent
        session.events.register("before-parameter-build.iam.SimulatePrincipalPolicy", _stash)
        session.events.register("before-call.iam.SimulatePrincipalPolicy", self._answer)

    # --- the botocore hook --------------------------------------------------------------

    def _answer(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = context[_STASH]
        with self._lock:
            self.calls.append(params)
            principal = self._principal(params["PolicySourceArn"])
        sent = _context(params.get("ContextEntries", []))
        results = [
            self._result(principal, action, params["ResourceArns"], sent)
            for action in params["ActionNames"]
        ]
        body = {"EvaluationResults": results, "IsTruncated": False}
        return AWSResponse("https://iam.amazonaws.com/", 200, {}, None), body

    # --- reading the principal's policies the way AWS has them ---------------------------

    def _principal(self, role_arn: str) -> _Principal:
        known = self._principals.get(role_arn)
        if known is None:
            known = self._principals[role_arn] = self._read(role_arn)
        return known

    def _read(self, role_arn: str) -> _Principal:
        account_id = role_arn.split(":")[4]
        name = role_arn.rsplit("/", 1)[-1]
        iam = self._member(account_id).client("iam")
        identity = []
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)
            identity.append((policy_name, document["PolicyDocument"]))
        for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            identity.append((attached["PolicyArn"], _managed(iam, attached["PolicyArn"])))
        role = iam.get_role(RoleName=name)["Role"]
        boundary_arn = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        boundary = (boundary_arn, _managed(iam, boundary_arn)) if boundary_arn else None
        return _Principal(identity, boundary, self._scp_levels(account_id))

    def _member(self, account_id: str) -> boto3.Session:
        sts = self._admin.client("sts")
        raw = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/{ADMIN_ROLE}",
            RoleSessionName="aws-like-simulator",
        )["Credentials"]
        return boto3.Session(
            aws_access_key_id=raw["AccessKeyId"],
            aws_secret_access_key=raw["SecretAccessKey"],
            aws_session_token=raw["SessionToken"],
            region_name=self._admin.region_name,
        )

    def _scp_levels(self, account_id: str) -> list[list[tuple[str, dict[str, Any]]]]:
        org = self._admin.client("organizations")
        management = org.describe_organization()["Organization"]["MasterAccountId"]
        if account_id == management:
            return []  # SCPs never restrict the management account
        chain = [account_id]
        while True:
            parent = org.list_parents(ChildId=chain[-1])["Parents"][0]
            chain.append(parent["Id"])
            if parent["Type"] == "ROOT":
                break
        levels = []
        for target in reversed(chain):
            summaries = org.list_policies_for_target(TargetId=target, Filter=SCP_TYPE)["Policies"]
            level = []
            for summary in summaries:
                content = org.describe_policy(PolicyId=summary["Id"])["Policy"]["Content"]
                level.append((summary["Id"], _json(content)))
            levels.append(level)
        return levels

    # --- evaluation -------------------------------------------------------------------

    def _result(
        self, principal: _Principal, action: str, resources: list[str], sent: dict[str, Any]
    ) -> dict[str, Any]:
        specific = [self._one(principal, action, resource, sent) for resource in resources]
        order = {"explicitDeny": 0, "implicitDeny": 1, "allowed": 2}
        worst = min(specific, key=lambda item: order[item["EvalResourceDecision"]])
        result: dict[str, Any] = {
            "EvalActionName": action,
            "EvalResourceName": resources[0] if len(resources) == 1 else "*",
            "EvalDecision": worst["EvalResourceDecision"],
            "MatchedStatements": worst["MatchedStatements"],
            "MissingContextValues": sorted(
                {key for item in specific for key in item["MissingContextValues"]}
            ),
            "EvalDecisionDetails": {},
            "ResourceSpecificResults": specific,
        }
        if principal.scp_levels:
            result["OrganizationsDecisionDetail"] = {
                "AllowedByOrganizations": all(item["_scp_allows"] for item in specific)
            }
        if principal.boundary is not None:
            result["PermissionsBoundaryDecisionDetail"] = worst["PermissionsBoundaryDecisionDetail"]
        for item in specific:
            del item["_scp_allows"]
        return result

    def _one(
        self, principal: _Principal, action: str, resource: str, sent: dict[str, Any]
    ) -> dict[str, Any]:
        missing: dict[str, None] = {}
        identity = _layer(principal.identity, action, resource, sent, missing)
        boundary = (
            _layer([principal.boundary], action, resource, sent, missing)
            if principal.boundary
            else None
        )
        levels = [_layer(level, action, resource, sent, missing) for level in principal.scp_levels]
        scp_denies = [deny for level in levels for deny in level.denies]
        scp_allows = all(level.allows for level in levels) and not scp_denies
        denies = [*identity.denies, *(boundary.denies if boundary else []), *scp_denies]
        boundary_allows = boundary is None or (bool(boundary.allows) and not boundary.denies)
        if denies:
            decision, matched = "explicitDeny", denies
        elif identity.allows and boundary_allows and scp_allows:
            decision, matched = "allowed", identity.allows
        else:
            decision, matched = "implicitDeny", []
        item: dict[str, Any] = {
            "EvalResourceName": resource,
            "EvalResourceDecision": decision,
            "MatchedStatements": [_matched(policy_id, s) for policy_id, s in matched],
            "MissingContextValues": list(missing),
            "EvalDecisionDetails": {},
            "_scp_allows": scp_allows,
        }
        if boundary is not None:
            item["PermissionsBoundaryDecisionDetail"] = {
                "AllowedByPermissionsBoundary": boundary_allows
            }
        return item


def _stash(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context[_STASH] = copy.deepcopy(params)


def _json(text: Any) -> dict[str, Any]:
    import json

    return text if isinstance(text, dict) else json.loads(text)


def _managed(iam: Any, arn: str) -> dict[str, Any]:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return _json(
        iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    )


def _context(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """ContextEntries as condition operators read them: nothing but what was sent."""
    context: dict[str, Any] = {}
    for entry in entries:
        values = [str(value) for value in entry["ContextKeyValues"]]
        if entry["ContextKeyType"].endswith("List"):
            context[entry["ContextKeyName"].lower()] = tuple(values)
        else:
            context[entry["ContextKeyName"].lower()] = values[0]
    return context


def _layer(
    policies: list[tuple[str, dict[str, Any]]],
    action: str,
    resource: str,
    sent: dict[str, Any],
    missing: dict[str, None],
) -> _Layer:
    layer = _Layer()
    for policy_id, document in policies:
        raw = document.get("Statement", [])
        raw = [raw] if isinstance(raw, dict) else raw
        for statement in compile_policy(document).candidates(action.lower(), resource, sent):
            for name in (raw[statement.index].get("Condition") or {}).values():
                missing.update({key: None for key in name if key.lower() not in sent})
            if all(condition_matches(condition, sent) for condition in statement.conditions):
                target = layer.allows if statement.effect == "Allow" else layer.denies
                target.append((policy_id, statement))
    return layer


def _policy_type(policy_id: str) -> str:
    if policy_id.startswith("p-"):
        return "none"  # an SCP
    if ":iam::aws:policy/" in policy_id:
        return "aws-managed"
    return "user-managed" if policy_id.startswith("arn:") else "role"


def _matched(policy_id: str, statement: CompiledStatement) -> dict[str, Any]:
    return {
        "SourcePolicyId": policy_id,
        "SourcePolicyType": _policy_type(policy_id),
        "StartPosition": {"Line": 1, "Column": statement.index + 1},
        "EndPosition": {"Line": 1, "Column": statement.index + 2},
    }
