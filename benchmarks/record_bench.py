"""Recording real verdicts: the cost of `record_outcomes` per account and the bytes it
leaves in PostgreSQL, for outcomes a scan of the fake AWS produced (real scenarios, real
explanations; benchmarks/fakeaws). Prints numbers; it asserts nothing.

    .venv/bin/python benchmarks/record_bench.py --accounts 40 --save /tmp/outcomes.pickle
    .venv/bin/python benchmarks/record_bench.py --load /tmp/outcomes.pickle

--save scans (simulator engine) and keeps the outcomes so later runs, on other code,
record exactly the same verdicts. Each run records them into a fresh scratch database,
one call per account (as the scan's writer does when it keeps up), then again as a
second run (shared documents are then already stored), and reports wall and CPU time
per account and pg_total_relation_size of the verdict tables.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import scan_scale  # noqa: E402

TABLES = ("check_results", "evidence_documents")


def capture(accounts: int) -> list[Any]:
    """Scan `accounts` accounts of the fake AWS and return their outcomes."""
    import storage.repository as repository

    captured: list[Any] = []
    real = repository.record_outcomes

    def keep(engine: Any, run_id: int, outcomes: Any) -> None:
        captured.extend(outcomes)
        real(engine, run_id, outcomes)

    repository.record_outcomes = keep
    args = scan_scale.parse_args([f"--accounts={accounts}", "--simulator=engine"])
    args.ous = max(4, accounts // 15)
    with scan_scale.fake_aws(args) as server, scan_scale.scratch_database() as url:
        scan_scale.scan(args, server.endpoint, url)
    repository.record_outcomes = real
    return captured


def stored_bytes(engine: Any) -> dict[str, int]:
    from sqlalchemy import text

    with engine.connect() as conn:
        return {
            table: conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar()
            for table in TABLES
            if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar()
        }


def record_all(engine: Any, outcomes: list[Any], label: str) -> None:
    from storage import repository

    run_id = repository.start_run(
        engine,
        trigger="bench",
        host="bench",
        config_fingerprint="",
        simulator_source="engine",
        accounts_total=len(outcomes),
    )
    wall: list[float] = []
    cpu: list[float] = []
    for outcome in outcomes:
        started, started_cpu = time.perf_counter(), time.process_time()
        repository.record_outcomes(engine, run_id, [outcome])
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    repository.finish_run(engine, run_id)
    wall.sort()
    print(
        f"  {label}: record_outcomes per account: mean {1000 * sum(wall) / len(wall):.1f} ms, "
        f"median {1000 * wall[len(wall) // 2]:.1f} ms, max {1000 * wall[-1]:.1f} ms; "
        f"client CPU mean {1000 * sum(cpu) / len(cpu):.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--save", type=Path, help="scan, then keep the outcomes here")
    parser.add_argument("--load", type=Path, help="outcomes kept by an earlier --save")
    args = parser.parse_args()
    if args.load:
        outcomes = pickle.loads(args.load.read_bytes())
    else:
        outcomes = capture(args.accounts)
        if args.save:
            args.save.write_bytes(pickle.dumps(outcomes))
    from storage.db import make_engine
    from storage.migrate import upgrade

    checks = sum(len(o.results) for o in outcomes)
    print(f"{len(outcomes)} accounts, {checks} verdicts")
    with scan_scale.scratch_database() as url:
        upgrade(url)
        engine = make_engine(url)
        record_all(engine, outcomes, "first run")
        first = stored_bytes(engine)
        record_all(engine, outcomes, "second run")
        second = stored_bytes(engine)
        engine.dispose()
    for label, sizes in (("after the first run", first), ("after the second", second)):
        total = sum(sizes.values())
        print(
            f"  stored {label}: {total / len(outcomes) / 1024:.0f} KiB per account "
            f"({', '.join(f'{k} {v / 2**20:.1f} MiB' for k, v in sizes.items())})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
