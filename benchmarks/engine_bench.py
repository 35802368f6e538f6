"""Throughput of the authorization engine on a realistic role.

The role has 10 managed policies of 20 statements each (most with conditions), a
3-level SCP path (root, OU, account), a 15-statement key policy, and is checked for the
7 actions a backup vault needs. Prints decisions per second for:
  - evaluate() on scenarios already built,
  - Scenario.from_dict() + evaluate() with the same policy objects (what the scanner does),
  - from_dict() + evaluate() on new document objects with known content (the
    canonical-JSON hash cache, as when a new scan fetches unchanged policies).

Rates are decisions per second of CPU time of the benchmark's thread (one core), so a
busy shared machine does not distort them much; the wall-clock median is printed too.

Run: .venv/bin/python benchmarks/engine_bench.py [--seconds 3] [--breakdown]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from scanner.policy import Scenario, evaluate, grammar
from scanner.policy import scenario as scenario_module

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/BackupOperator"
KEY = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VAULT = f"arn:aws:backup:us-west-2:{ACCOUNT}:backup-vault:main"
CHECKS = [
    ("backup:CreateBackupVault", VAULT),
    ("backup-storage:MountCapsule", "*"),
    ("kms:CreateGrant", KEY),
    ("kms:DescribeKey", KEY),
    ("kms:RetireGrant", KEY),
    ("kms:Decrypt", KEY),
    ("kms:GenerateDataKey", KEY),
]
SERVICES = ["s3", "ec2", "rds", "dynamodb", "logs", "kms", "backup", "sns", "sqs", "lambda"]
CONDITIONS: list[dict[str, Any] | None] = [
    {"StringEquals": {"aws:RequestedRegion": ["us-west-2", "us-east-1"]}},
    {"StringLike": {"aws:PrincipalTag/team": "backup*"}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"ForAnyValue:StringEquals": {"aws:TagKeys": ["env", "owner"]}},
    {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/Backup*"}},
    {"StringEqualsIfExists": {"kms:ViaService": "backup.us-west-2.amazonaws.com"}},
    {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}},
    None,
]


def managed_policy(number: int) -> dict[str, Any]:
    statements = []
    for index in range(20):
        service = SERVICES[(number + index) % len(SERVICES)]
        deny = index % 9 == 8
        verbs = ["Delete*", "Put*Policy"] if deny else ["Get*", "List*", "Describe*", "Create*"]
        statement: dict[str, Any] = {
            "Sid": f"P{number}S{index}",
            "Effect": "Deny" if deny else "Allow",
            "Action": [f"{service}:{verb}" for verb in verbs],
            "Resource": f"arn:aws:{service}:*:{ACCOUNT}:*",
        }
        condition = CONDITIONS[(number * 20 + index) % len(CONDITIONS)]
        if condition:
            statement["Condition"] = condition
        statements.append(statement)
    if number == 0:
        statements[0] = {
            "Sid": "BackupVault",
            "Effect": "Allow",
            "Action": [
                "backup:CreateBackupVault",
                "backup-storage:MountCapsule",
                "kms:CreateGrant",
                "kms:DescribeKey",
                "kms:RetireGrant",
                "kms:Decrypt",
                "kms:GenerateDataKey",
            ],
            "Resource": "*",
        }
    return {"Version": "2012-10-17", "Statement": statements}


def scp_path() -> list[list[dict[str, Any]]]:
    full = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "FullAWSAccess", "Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    guard = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyLeaveOrg",
                "Effect": "Deny",
                "Action": "organizations:LeaveOrganization",
                "Resource": "*",
            },
            {
                "Sid": "RegionLock",
                "Effect": "Deny",
                "NotAction": ["iam:*", "sts:*", "support:*"],
                "Resource": "*",
                "Condition": {
                    "StringNotEquals": {"aws:RequestedRegion": ["us-west-2", "us-east-1"]}
                },
            },
            {
                "Sid": "ProtectVaults",
                "Effect": "Deny",
                "Action": "backup:DeleteBackupVault*",
                "Resource": "*",
                "Condition": {
                    "ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/Admin"}
                },
            },
        ],
    }
    return [[full], [full, guard], [full]]


def key_policy() -> dict[str, Any]:
    statements: list[dict[str, Any]] = [
        {
            "Sid": "EnableIAM",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
    ]
    for index in range(13):
        statements.append(
            {
                "Sid": f"App{index}",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/App{index}"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}},
            }
        )
    statements.append(
        {
            "Sid": "DenyOutsideOrg",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {"StringNotEqualsIfExists": {"aws:PrincipalOrgID": "o-exampleorg"}},
        }
    )
    return {"Version": "2012-10-17", "Statement": statements}


def scenario_dicts(policies: dict[str, Any]) -> list[dict[str, Any]]:
    context = {
        "aws:PrincipalTag/team": "backup",
        "aws:PrincipalOrgID": "o-exampleorg",
        "aws:RequestedRegion": "us-west-2",
        "aws:SecureTransport": True,
        "aws:SourceIp": "10.1.2.3",
    }
    return [
        {
            "request": {
                "principal_arn": ROLE,
                "action": action,
                "resource": resource,
                "context": context,
            },
            "policies": policies,
        }
        for action, resource in CHECKS
    ]


def scanner_inputs(policies: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """The same role, SCP path and key as scanner.model objects, with the built-in vault
    profile: what decide receives from the collect stage."""
    from scanner.decide.account import AccountContext
    from scanner.model import (
        Account,
        AccountCollection,
        KmsKey,
        NamedPolicy,
        Organization,
        OrgUnit,
        Role,
    )
    from scanner.profiles import available_profiles

    units = (OrgUnit("r-ab12", "Root"), OrgUnit("ou-ab12-11111111", "Prod"))
    account = Account(id=ACCOUNT, name="prod-app", ou_path=units)
    targets = [unit.id for unit in units] + [ACCOUNT]
    scps = {
        target: [NamedPolicy(f"p-{n}{i}", doc) for i, doc in enumerate(level)]
        for n, (target, level) in enumerate(zip(targets, policies["scps"], strict=True))
    }
    organization = Organization("999999999999", [account], scps=scps)
    role = Role(
        arn=ROLE,
        name="BackupOperator",
        managed_policies=[
            NamedPolicy(f"arn:aws:iam::{ACCOUNT}:policy/P{n}", doc)
            for n, doc in enumerate(policies["identity"])
        ],
        permissions_boundary=NamedPolicy(
            f"arn:aws:iam::{ACCOUNT}:policy/Boundary", policies["permissions_boundary"]
        ),
    )
    key = KmsKey(
        arn=KEY,
        key_id=KEY.rsplit("/", 1)[-1],
        region="us-west-2",
        aliases=["alias/backup-vault-key"],
        key_policy=policies["resource_policy"],
        sources=["configured"],
    )
    collection = AccountCollection(
        account=account,
        roles=[role],
        keys={"us-west-2": [key]},
        scanned_at=datetime(2026, 12, 1, 6, 0, tzinfo=UTC),  # collect records the read time
    )
    requirements = available_profiles()["backup-vault-create"].requirements
    context = AccountContext(organization, collection, "aws")
    return context, role, key, requirements


def measure(label: str, seconds: float, step: Callable[[], int]) -> float:
    """Decisions per second of CPU time (this thread), best and median over rounds of
    ~0.25 s: CPU time is what one core delivers even when the machine is shared, and
    the wall-clock rate is printed next to it."""
    step()  # warm caches
    cpu_rates: list[float] = []
    wall_rates: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(cpu_rates) < 3:
        done = 0
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        while time.thread_time() - cpu_start < 0.25:
            done += step()
        cpu_rates.append(done / (time.thread_time() - cpu_start))
        wall_rates.append(done / (time.perf_counter() - wall_start))
    best = max(cpu_rates)
    print(
        f"{label:<58} {best:>9,.0f}/s CPU best, {statistics.median(cpu_rates):>9,.0f}/s CPU "
        f"median, {statistics.median(wall_rates):>9,.0f}/s wall median"
    )
    return best


def breakdown(ctx: Any, role: Any, key: Any, requirements: Any, rounds: int = 3000) -> None:
    """decide's path in its three parts, timed one by one inside the same loop: the
    `Asked` record (context, check, scenario), the engine's request, `evaluate`. Each
    part also pays one clock reading (printed, to subtract)."""
    clock = time.thread_time_ns
    totals = [0, 0, 0]
    idle = 0
    for round_number in range(rounds + 200):  # the first 200 rounds warm up
        if round_number == 200:
            totals, idle = [0, 0, 0], 0
        for requirement in requirements:
            start = clock()
            asked = ctx.asked(
                role, "us-west-2", requirement, key if requirement.needs_key else None
            )
            built = clock()
            asked.scenario.request()
            requested = clock()
            evaluate(asked.scenario)
            done = clock()
            tick = clock()
            idle += clock() - tick
            totals[0] += built - start
            totals[1] += requested - built
            totals[2] += done - requested
    count = rounds * len(requirements) * 1000
    parts = ("asked (context, check, scenario)", "engine request", "evaluate")
    for label, total in zip(parts, totals, strict=True):
        print(f"{label:<40} {total / count:6.2f} us per decision")
    print(f"{'one clock reading':<40} {idle / count:6.2f} us")
    # the same seven scenarios, built once, evaluated with nothing in between
    built = [
        ctx.asked(role, "us-west-2", req, key if req.needs_key else None).scenario
        for req in requirements
    ]
    start = clock()
    for _ in range(rounds):
        for scenario in built:
            evaluate(scenario)
    alone = (clock() - start) / count
    print(f"{'evaluate alone, the same scenarios':<40} {alone:6.2f} us per decision")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="only print decide's path per part (microseconds of CPU time per decision)",
    )
    args = parser.parse_args()

    policies = {
        "scps": scp_path(),
        "rcps": [],
        "permissions_boundary": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["backup:*", "backup-storage:*", "kms:*"],
                    "Resource": "*",
                }
            ],
        },
        "identity": [managed_policy(n) for n in range(10)],
        "resource_policy": key_policy(),
    }
    dicts = scenario_dicts(policies)

    start = time.perf_counter()
    scenarios = [Scenario.from_dict(data) for data in dicts]
    cold_ms = (time.perf_counter() - start) * 1000
    decisions = [evaluate(s).decision for s in scenarios]
    print(
        f"role: 10 managed policies x 20 statements, 3-level SCP path, "
        f"{len(policies['resource_policy']['Statement'])}-statement key policy, "
        f"{len(CHECKS)} actions"
    )
    print(f"decisions: {dict(zip([a for a, _ in CHECKS], map(str, decisions), strict=True))}")
    print(f"{'first build (compiles every policy once)':<58} {cold_ms:>10.1f} ms")

    def evaluate_only() -> int:
        for scenario in scenarios:
            evaluate(scenario)
        return len(scenarios)

    def build_and_evaluate() -> int:
        for data in dicts:
            evaluate(Scenario.from_dict(data))
        return len(dicts)

    copies = [copy.deepcopy(dicts) for _ in range(50)]
    position = [0]

    def fresh_documents() -> int:
        # New document objects with known content: forget the identity caches so every
        # batch takes the canonical-JSON hash path, as a new scan's API responses would.
        grammar._by_identity.clear()
        scenario_module._policy_sets.clear()
        batch = copies[position[0] % len(copies)]
        position[0] += 1
        for data in batch:
            evaluate(Scenario.from_dict(data))
        return len(batch)

    from scanner.decide.account import AccountContext
    from scanner.decide.verdict import decide_request

    ctx, role, key, requirements = scanner_inputs(policies)

    def decide_path() -> int:
        # decide builds each typed scenario (request context, key owner's RCPs, the
        # compiled policies of the role reused), then the engine answers it
        for requirement in requirements:
            asked = ctx.asked(
                role, "us-west-2", requirement, key if requirement.needs_key else None
            )
            evaluate(asked.scenario)
        return len(requirements)

    def decide_path_new_account() -> int:
        # as decide_path, but each round of seven checks is a new account's: the parts
        # shared per account (organization paths, request-context parts, rendered
        # requirements) are built again; only the role's compiled scenario is kept
        fresh = AccountContext(ctx.organization, ctx.collection, ctx.partition)
        fresh._scenarios = ctx._scenarios
        for requirement in requirements:
            asked = fresh.asked(
                role, "us-west-2", requirement, key if requirement.needs_key else None
            )
            evaluate(asked.scenario)
        return len(requirements)

    def whole_verdicts() -> int:
        # every verdict as a scan stores it: scenario, explanation, message, fix
        for requirement in requirements:
            asked = ctx.asked(
                role, "us-west-2", requirement, key if requirement.needs_key else None
            )
            decide_request(asked, [])
        return len(requirements)

    if args.breakdown:
        breakdown(ctx, role, key, requirements)
        return
    rate = measure("evaluate(scenario)", args.seconds, evaluate_only)
    path_rate = measure("decide builds the typed scenario + evaluate", args.seconds, decide_path)
    measure(
        "decide path, a new account every 7 checks (cold caches)",
        args.seconds,
        decide_path_new_account,
    )
    measure("decide: whole verdict (+ stored scenario, explanation)", args.seconds, whole_verdicts)
    measure("Scenario.from_dict + evaluate (same documents)", args.seconds, build_and_evaluate)
    measure("from_dict + evaluate, new objects per role (hash path)", args.seconds, fresh_documents)
    target = 20_000
    verdict = "met" if rate >= target else "NOT met"
    print(f"target {target:,} decisions/s on one core (evaluate, CPU best): {verdict}")
    path_target = 30_000
    verdict = "met" if path_rate >= path_target else "NOT met"
    print(
        f"target {path_target:,} decisions/s on one core (decide's typed scenario + "
        f"evaluate, CPU best): {verdict}"
    )


if __name__ == "__main__":
    main()
