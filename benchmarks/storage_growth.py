"""How much each scan of the demo organization adds to every table (rows and bytes).

Runs `vaultscan demo --database-url URL` SCANS times against an empty database and prints,
after each scan, the rows and on-disk bytes (table + indexes + TOAST) of every table, then
the growth per scan once the first scan has created the state. Then prunes everything but
the newest run and prints what is left.

    .venv/bin/python benchmarks/storage_growth.py --database-url postgresql://postgres@127.0.0.1/growth

The database must exist and should be empty (it is migrated by the first scan).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from storage.db import make_engine, normalise_url
from storage.retention import TABLES, prune, table_bytes, table_rows

VAULTSCAN = Path(sys.executable).with_name("vaultscan")


def _snapshot(engine: object) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text("ANALYZE"))  # nothing to do with size; keeps reltuples honest
        conn.commit()
    rows, sizes = table_rows(engine), table_bytes(engine)  # type: ignore[arg-type]
    return {table: (rows[table], sizes.get(table, 0)) for table in TABLES}


def _print(title: str, snap: dict[str, tuple[int, int]]) -> None:
    print(f"\n{title}")
    print(f"{'table':<16}{'rows':>10}{'bytes':>14}")
    for table, (rows, size) in snap.items():
        print(f"{table:<16}{rows:>10}{size:>14,}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--scans", type=int, default=4)
    args = parser.parse_args()
    engine = make_engine(normalise_url(args.database_url))
    snaps = []
    env = {**os.environ, "NO_COLOR": "1"}
    for number in range(1, args.scans + 1):
        subprocess.run(
            [str(VAULTSCAN), "demo", "--database-url", args.database_url],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        snaps.append(_snapshot(engine))
        _print(f"after scan {number}", snaps[-1])
    if len(snaps) >= 3:
        first, last = snaps[1], snaps[-1]
        scans = len(snaps) - 2
        print(f"\ngrowth per scan (average of scans 3..{len(snaps)} over scan 2)")
        print(f"{'table':<16}{'rows':>10}{'bytes':>14}")
        for table in TABLES:
            rows = (last[table][0] - first[table][0]) / scans
            size = (last[table][1] - first[table][1]) / scans
            print(f"{table:<16}{rows:>10.0f}{size:>14,.0f}")
    result = prune(engine, keep_days=1, now=datetime.now(UTC) + timedelta(days=2))
    print(f"\nprune (everything but the newest run): {result}")
    _print("after prune", _snapshot(engine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
