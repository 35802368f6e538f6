"""Shared helpers for the AWS-side tests: a moto organization builder, AWS error
injection, and a simulator that allows everything."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from scanner.model import SimulatorAnswer

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@dataclass
class MotoOrg:
    """An organization in moto, built through the management account's credentials."""

    session: boto3.Session
    client: Any
    root_id: str
    management_id: str
    names: dict[str, str] = field(default_factory=dict)

    def ou(self, name: str, parent: str | None = None) -> str:
        answer = self.client.create_organizational_unit(ParentId=parent or self.root_id, Name=name)
        return answer["OrganizationalUnit"]["Id"]

    def account(self, name: str, parent: str | None = None) -> str:
        status = self.client.create_account(AccountName=name, Email=f"{name}@example.com")
        account_id = status["CreateAccountStatus"]["AccountId"]
        if parent:
            self.client.move_account(
                AccountId=account_id, SourceParentId=self.root_id, DestinationParentId=parent
            )
        self.names[account_id] = name
        return account_id

    def scp(
        self, name: str, document: dict, *targets: str, kind: str = "SERVICE_CONTROL_POLICY"
    ) -> str:
        answer = self.client.create_policy(
            Content=json.dumps(document), Description=name, Name=name, Type=kind
        )
        policy_id = answer["Policy"]["PolicySummary"]["Id"]
        for target in targets:
            self.client.attach_policy(PolicyId=policy_id, TargetId=target)
        return policy_id

    def member_session(self, account_id: str, region: str = "us-east-1") -> boto3.Session:
        """Credentials inside `account_id` (moto files resources under that account)."""
        creds = self.session.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
            RoleSessionName="test-setup",
        )["Credentials"]
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region,
        )


def inject_error(
    client: Any,
    event: str,
    code: str,
    message: str = "injected",
    status: int = 400,
    when: Callable[[dict[str, Any]], bool] = lambda params: True,
    times: int | None = None,
) -> list[int]:
    """Make `client` answer `event` (e.g. 'sts.AssumeRole') with an AWS error.

    Returns a one-element list counting the injected failures. `times` limits how many."""
    fired = [0]

    def handler(params: dict[str, Any], **_: Any) -> Any:
        if not when(params) or (times is not None and fired[0] >= times):
            return None
        fired[0] += 1
        body = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse("https://injected", status, {}, None), body

    client.meta.events.register_first(f"before-call.{event}", handler)
    return fired


class AllowAllSimulator:
    """Answers every request `allowed`: for tests about collection, not decisions."""

    name = "test"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def simulate(
        self,
        iam_client: Any,
        role: Any,
        account: Any,
        region: str,
        requests: list[tuple[str, str, dict]],
    ) -> list[SimulatorAnswer]:
        self.calls.append((role.arn, region, len(requests)))
        return [SimulatorAnswer(a, r, "allowed", source="sandbox-engine") for a, r, _ in requests]
