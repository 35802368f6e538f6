"""Storage throughput: bulk insert of check results, finish_run (drift) on many keys, and the
embedded server's start time. Prints numbers; it asserts nothing.

    .venv/bin/python benchmarks/storage_bench.py                 # 10,000 results
    .venv/bin/python benchmarks/storage_bench.py --checks 100000 --embedded

It creates (and drops) a scratch database on the server given by --admin-url (default:
$VAULTSCAN_TEST_PG_URL, else postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanner.model import Account, AccountOutcome, CheckResult, OrgUnit  # noqa: E402
from storage import repository as repo  # noqa: E402
from storage.db import make_engine  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

CHECKS_PER_ACCOUNT = 100
OU = (OrgUnit("r-ab12", "Root"), OrgUnit("ou-ab12-11111111", "Prod"))


@contextmanager
def scratch_database(admin: str) -> Iterator[str]:
    name = f"vaultscan_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin)
    password = f":{info['password']}" if info.get("password") else ""
    url = (
        f"postgresql+psycopg://{info.get('user', 'postgres')}{password}@"
        f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"
    )
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def outcomes(total_checks: int, *, failing_every: int) -> list[AccountOutcome]:
    """Accounts of CHECKS_PER_ACCOUNT results each, evidence sized like a real scenario."""
    accounts = max(1, total_checks // CHECKS_PER_ACCOUNT)
    result: list[AccountOutcome] = []
    for a in range(accounts):
        account_id = f"{100000000000 + a}"
        role = f"arn:aws:iam::{account_id}:role/BackupOperator"
        results = []
        for c in range(CHECKS_PER_ACCOUNT):
            failing = (a * CHECKS_PER_ACCOUNT + c) % failing_every == 0
            results.append(
                CheckResult(
                    account_id=account_id,
                    region=("eu-west-1", "us-east-1")[c % 2],
                    role_arn=role,
                    check=f"svc:Action{c // 2}",
                    resource=f"arn:aws:backup:eu-west-1:{account_id}:backup-vault:*",
                    status="fail" if failing else "pass",
                    decision="explicitDeny" if failing else "allowed",
                    deciding_layer="scp" if failing else None,
                    policy="p-deny" if failing else None,
                    message="denied by SCP p-deny" if failing else "allowed",
                    remediation={"layer": "scp", "edit": "remove Deny"} if failing else None,
                    scenario={"action": f"svc:Action{c}", "policies": [{"Statement": []}] * 5},
                    explanation={"layers": {"scp": "deny" if failing else "allow"}},
                )
            )
        result.append(
            AccountOutcome(
                account=Account(id=account_id, name=f"acct-{a}", ou_path=OU),
                status="ok",
                results=results,
                api_calls=Counter({"iam:SimulatePrincipalPolicy": CHECKS_PER_ACCOUNT}),
            )
        )
    return result


def timed(label: str, count: int, fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - started
    print(f"  {label:<52} {elapsed * 1000:9.1f} ms  {count / elapsed:10.0f} rows/s")
    return elapsed


def new_run(engine: Engine, accounts: int) -> int:
    return repo.start_run(
        engine,
        trigger="bench",
        host="bench",
        config_fingerprint="",
        simulator_source="aws",
        accounts_total=accounts,
    )


def copy_insert(engine: Engine, run_id: int, data: list[AccountOutcome]) -> None:
    """The COPY alternative, for comparison only (no upsert, so not what storage uses)."""
    columns = (
        "scan_run_id",
        "check_key",
        "account_id",
        "region",
        "role_arn",
        "check",
        "resource",
        "status",
        "decision",
        "deciding_layer",
        "policy",
        "message",
        "remediation",
        "evidence",
        "disagreement",
    )
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        quoted = ", ".join(f'"{c}"' for c in columns)
        with cursor.copy(f"COPY check_results ({quoted}) FROM STDIN") as copy:
            for outcome in data:
                for r in outcome.results:
                    copy.write_row(
                        (
                            run_id,
                            r.key,
                            r.account_id,
                            r.region,
                            r.role_arn,
                            r.check,
                            r.resource,
                            r.status,
                            r.decision,
                            r.deciding_layer,
                            r.policy,
                            r.message,
                            json.dumps(r.remediation) if r.remediation else None,
                            json.dumps({"scenario": r.scenario, "explanation": r.explanation}),
                            r.disagreement,
                        )
                    )
        raw.commit()
    finally:
        raw.close()


def executemany_insert(engine: Engine, run_id: int, data: list[AccountOutcome]) -> None:
    """SQLAlchemy insert() with a list of dicts and the same upsert, for comparison only
    (psycopg sends it as one pipelined INSERT per row)."""
    from sqlalchemy.dialects.postgresql import insert

    from storage.models import CheckResult as Row

    rows = [{"scan_run_id": run_id, **repo._result_row(r)} for o in data for r in o.results]
    stmt = insert(Row)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Row.scan_run_id, Row.check_key],
        set_={name: stmt.excluded[name] for name in ("status", "message", "evidence")},
    )
    with engine.begin() as conn:
        conn.execute(stmt, rows)


def bench_database(admin: str, checks: int) -> None:
    print(f"PostgreSQL at {admin}: {checks} check results, {CHECKS_PER_ACCOUNT} per account")
    with scratch_database(admin) as url:
        upgrade(url)
        engine = make_engine(url)
        first = outcomes(checks, failing_every=10)
        n = sum(len(o.results) for o in first)

        run1 = new_run(engine, len(first))
        timed("record_outcomes, one call", n, lambda: repo.record_outcomes(engine, run1, first))
        timed("finish_run, all keys new", n, lambda: repo.finish_run(engine, run1))

        second = outcomes(checks, failing_every=7)  # some regress, some are fixed
        run2 = new_run(engine, len(second))
        timed(
            "record_outcomes, one call per account",
            n,
            lambda: [repo.record_outcomes(engine, run2, [o]) for o in second],
        )
        totals = None

        def finish() -> None:
            nonlocal totals
            totals = repo.finish_run(engine, run2)

        timed("finish_run, drift against previous state", n, finish)
        print(f"    drift events written: {totals.drift}")

        run3 = new_run(engine, len(first))
        timed("COPY (comparison only, no upsert)", n, lambda: copy_insert(engine, run3, first))
        run4 = new_run(engine, len(first))
        timed(
            "executemany insert() upsert (comparison only)",
            n,
            lambda: executemany_insert(engine, run4, first),
        )
        timed("latest_results, every key", n, lambda: repo.latest_results(engine))
        engine.dispose()


EMBEDDED_PROBE = """
import sys, time
from pathlib import Path
started = time.perf_counter()
from storage.embedded import start_embedded
start_embedded(Path(sys.argv[1]))
print(time.perf_counter() - started)
"""


def bench_embedded() -> None:
    """Each start in a fresh process, as the CLI would: the server stops when it exits."""
    print("embedded PostgreSQL (fresh process each; includes imports and CREATE DATABASE)")
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="vaultscan-bench-") as tmp:
        for label in ("cold: initdb + start", "warm: start existing data dir", "warm again"):
            out = subprocess.run(
                [sys.executable, "-c", EMBEDDED_PROBE, str(Path(tmp) / "data")],
                cwd=root,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            print(f"  {label:<52} {float(out.strip()) * 1000:9.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "VAULTSCAN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--embedded", action="store_true", help="also time the embedded server")
    args = parser.parse_args()
    bench_database(args.admin_url, args.checks)
    if args.embedded:
        bench_embedded()


if __name__ == "__main__":
    main()
