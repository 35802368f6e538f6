"""Cost of the AWS side of a scan, against moto (no network, so it measures vaultscan's
own overhead plus botocore's request handling, not AWS latency):

  - clients: the per-account cost of making the 3 clients an account needs (iam, kms,
    backup) from the one shared Session, versus a new boto3 Session per account;
  - discovery: walking an organization of N accounts in 3 OU levels with SCPs;
  - collection: collect_account per account (1 designated role with inline + managed
    policy and boundary, 2 regions, one vault key), sequentially and with the
    runner's thread pool, and the API calls made per account.

Run: .venv/bin/python benchmarks/collect_bench.py [--accounts 20] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ.setdefault(_name, _value)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from scanner.aws.collect import collect_account  # noqa: E402
from scanner.aws.organizations import discover  # noqa: E402
from scanner.aws.session import AwsSessions  # noqa: E402
from scanner.config import load_settings  # noqa: E402
from scanner.model import SimulatorAnswer  # noqa: E402
from scanner.profiles import load_profiles  # noqa: E402

REGIONS = ["us-east-1", "eu-west-1"]
ALLOW = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


class AllowAll:
    name = "bench"

    def simulate(self, iam_client, role, account, region, requests):  # noqa: ANN001, ANN201
        return [SimulatorAnswer(a, r, "allowed", source="sandbox-engine") for a, r, _ in requests]


def build_org(session: boto3.Session, accounts: int) -> list[str]:
    org = session.client("organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    org.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
    parent = root
    for level in range(3):
        parent = org.create_organizational_unit(ParentId=parent, Name=f"l{level}")[
            "OrganizationalUnit"
        ]["Id"]
        scp = org.create_policy(
            Content=json.dumps(ALLOW),
            Description="d",
            Name=f"scp{level}",
            Type="SERVICE_CONTROL_POLICY",
        )["Policy"]["PolicySummary"]["Id"]
        org.attach_policy(PolicyId=scp, TargetId=parent)
    ids = []
    sts = session.client("sts")
    for index in range(accounts):
        account = org.create_account(AccountName=f"a{index}", Email=f"a{index}@example.com")[
            "CreateAccountStatus"
        ]["AccountId"]
        org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=parent)
        creds = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/Setup", RoleSessionName="bench"
        )["Credentials"]
        inside = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name="us-east-1",
        )
        iam = inside.client("iam")
        iam.create_role(RoleName="BackupOperator", AssumeRolePolicyDocument=json.dumps(ALLOW))
        iam.put_role_policy(
            RoleName="BackupOperator", PolicyName="inline", PolicyDocument=json.dumps(ALLOW)
        )
        arn = iam.create_policy(PolicyName="Managed", PolicyDocument=json.dumps(ALLOW))["Policy"][
            "Arn"
        ]
        iam.attach_role_policy(RoleName="BackupOperator", PolicyArn=arn)
        iam.put_role_permissions_boundary(RoleName="BackupOperator", PermissionsBoundary=arn)
        key = inside.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["Arn"]
        inside.client("backup", region_name="eu-west-1").create_backup_vault(
            BackupVaultName="main", EncryptionKeyArn=key
        )
        ids.append(account)
    return ids


def bench_clients(rounds: int) -> None:
    shared = boto3.Session()
    per_account_shared, per_account_new = [], []
    for index in range(rounds):
        kwargs = {
            "aws_access_key_id": f"AKIA{index:016d}",
            "aws_secret_access_key": "s",
            "aws_session_token": "t",
        }
        start = time.perf_counter()
        for service in ("iam", "kms", "backup"):
            shared.client(service, region_name="eu-west-1", **kwargs)
        per_account_shared.append(time.perf_counter() - start)
        start = time.perf_counter()
        own = boto3.Session(**kwargs)
        for service in ("iam", "kms", "backup"):
            own.client(service, region_name="eu-west-1")
        per_account_new.append(time.perf_counter() - start)
    shared_ms = statistics.median(per_account_shared) * 1000
    new_ms = statistics.median(per_account_new) * 1000
    print(
        f"clients per account: shared Session {shared_ms:.1f} ms, "
        f"Session per account {new_ms:.1f} ms ({new_ms / shared_ms:.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    bench_clients(rounds=10)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        accounts = build_org(session, args.accounts)
        settings = load_settings(
            path=None, overrides={"regions": REGIONS, "concurrency": args.threads}
        )
        profiles = load_profiles(settings)

        sessions = AwsSessions(settings, session=session)
        start = time.perf_counter()
        organization = discover(sessions, settings)
        took = time.perf_counter() - start
        print(
            f"discovery: {len(organization.accounts)} accounts in {took * 1000:.0f} ms "
            f"({sum(sessions.recorder.counts.values())} Organizations calls)"
        )

        def run(account):  # noqa: ANN001, ANN202
            return collect_account(sessions, settings, profiles, account, organization, AllowAll())

        half = len(organization.accounts) // 2
        start = time.perf_counter()
        sequential = [run(account) for account in organization.accounts[:half]]
        per_account = (time.perf_counter() - start) / max(half, 1)
        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            parallel = list(pool.map(run, organization.accounts[half:]))
        wall = time.perf_counter() - start
        errors = [c.error for c in sequential + parallel if c.error]
        calls = sequential[0].api_calls
        print(f"collection, sequential: {per_account * 1000:.0f} ms per account")
        print(
            f"collection, {args.threads} threads: {len(parallel)} accounts in "
            f"{wall * 1000:.0f} ms ({wall / max(len(parallel), 1) * 1000:.0f} ms per account)"
        )
        print(f"API calls per account: {sum(calls.values())} {dict(sorted(calls.items()))}")
        print(f"errors: {len(errors)} (of {len(accounts)} accounts)")


if __name__ == "__main__":
    main()
