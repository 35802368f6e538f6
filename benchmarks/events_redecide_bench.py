"""How fast an SCP change is re-decided from stored evidence (no AWS calls).

Scans the sandbox organization (moto) into a scratch PostgreSQL database, reads its stored
verdicts, replicates them to --accounts accounts, then re-decides all of them under a new
SCP attached at the root (the worst case: every check of every account is touched).
Prints checks re-decided per second of CPU and wall time.

    .venv/bin/python benchmarks/events_redecide_bench.py --accounts 1000
"""

from __future__ import annotations

import argparse
import copy
import time
import uuid

import boto3
import psycopg
from moto import mock_aws

from scanner.aws.ratelimit import Throttle
from scanner.aws.session import AwsSessions
from scanner.events.redecide import OrgChange, redecide
from scanner.model import NamedPolicy
from scanner.runner import run_scan
from scanner.sandbox import sandbox_settings, seed_sandbox_organization
from storage.db import make_engine
from storage.event_queries import stored_verdicts
from storage.migrate import upgrade

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
GUARD_RAIL = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "AllowAll", "Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Sid": "NoVaultDeletion",
            "Effect": "Deny",
            "Action": "backup:DeleteBackupVault",
            "Resource": "*",
        },
    ],
}


def stored_rows() -> tuple[list[dict], str]:
    name = f"vaultscan_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        engine = make_engine(url)
        with mock_aws():
            session = boto3.Session(
                aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
            )
            sandbox = seed_sandbox_organization(session)
            settings = sandbox_settings(sandbox)
            sessions = AwsSessions(settings, session=session, org_throttle=Throttle())
            run_scan(settings, engine=engine, sessions=sessions)
        rows = stored_verdicts(engine, accounts=[a.account_id for a in sandbox.accounts])
        engine.dispose()
        return rows, sandbox.root_id
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    args = parser.parse_args()
    rows, root = stored_rows()
    per_account: dict[str, list[dict]] = {}
    for row in rows:
        per_account.setdefault(row["account_id"], []).append(row)
    templates = [group for group in per_account.values() if group]
    many: list[dict] = []
    for number in range(args.accounts):
        for row in templates[number % len(templates)]:
            clone = copy.deepcopy(row)  # new documents per account, as read from the database
            clone["account_id"] = f"{900000000000 + number:012d}"
            clone["check_key"] = f"{clone['account_id']}|{row['check_key']}"
            many.append(clone)
    change = OrgChange(
        attachments={
            root: {
                "scps": [
                    NamedPolicy(
                        "p-FullAWSAccess (FullAWSAccess)",
                        GUARD_RAIL["Statement"][0]
                        and {
                            "Version": "2012-10-17",
                            "Statement": [GUARD_RAIL["Statement"][0]],
                        },
                    ),
                    NamedPolicy("p-guard (GuardRail)", GUARD_RAIL),
                ]
            }
        },
        note="a benchmark SCP at the root",
    )
    cpu, wall = time.process_time(), time.perf_counter()
    result = redecide(many, change)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"accounts={args.accounts} stored checks={len(many)} re-decided={result.checks} "
        f"needs_rescan={len(result.needs_rescan)} cpu={cpu:.2f}s wall={wall:.2f}s "
        f"rate_cpu={result.checks / cpu:,.0f}/s rate_wall={result.checks / wall:,.0f}/s"
    )


if __name__ == "__main__":
    main()
