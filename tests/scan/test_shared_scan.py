"""Two processes share one scan's accounts through PostgreSQL; one is killed mid-scan and
every account is still recorded exactly once.

AWS is the benchmarks' fake (benchmarks/fakeaws): real wire protocols with a per-call
latency, so a scan of 60 accounts lasts long enough to kill a replica in the middle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from storage.migrate import upgrade

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 60
LEASE = 3.0

COMMON = f"""
import sys
import scanner.shared_scan as shared
shared.LEASE_SECONDS = {LEASE}
from scanner.config import load_settings
from storage.db import make_engine
settings = load_settings(overrides={{
    "regions": ["us-east-1", "eu-west-1"],
    "keys": {{"default": "alias/vaultscan-backup"}},
    "simulator": "engine",
    "concurrency": 4,
    "share_scans": True,
}})
engine = make_engine(settings.database.url)
"""
LEAD = (
    COMMON
    + """
from scanner.runner import run_scan
report = run_scan(settings, engine=engine, trigger="cli", keep_results=False)
print("run", report.run_id, report.totals.status, flush=True)
"""
)
JOIN = (
    COMMON
    + """
import time
from scanner.shared_scan import join_shared_scans
from storage.work_queue import open_shared_runs
deadline = time.monotonic() + 60
while not open_shared_runs(engine) and time.monotonic() < deadline:
    time.sleep(0.1)
print("joined", join_shared_scans(settings, engine, host=sys.argv[1]), flush=True)
"""
)


@pytest.fixture
def fake_aws() -> Iterator[str]:
    server = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "fakeaws" / "server.py"),
            f"--accounts={ACCOUNTS}",
            "--ous=4",
            "--regions=us-east-1,eu-west-1",
            "--latency-ms=40",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith("listening "), line
        yield f"http://127.0.0.1:{line.split()[1]}"
    finally:
        server.kill()
        server.wait(timeout=10)


def _start(script: str, database_url: str, endpoint: str, *args: str) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULTSCAN_"))},
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "scanner",
        "AWS_SECRET_ACCESS_KEY": "scanner",
        "AWS_DEFAULT_REGION": "us-east-1",
        "VAULTSCAN_DATABASE__URL": database_url,
    }
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def _scalar(url: str, query: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(query)).scalar() or 0)
    finally:
        engine.dispose()


def test_a_replica_killed_mid_scan_loses_no_account(fake_aws: str, database_url: str) -> None:
    upgrade(database_url)
    leader = _start(LEAD, database_url, fake_aws)
    helper = _start(JOIN, database_url, fake_aws, "helper-replica")
    try:
        deadline = time.monotonic() + 120
        done_by_helper = 0
        while time.monotonic() < deadline and done_by_helper < 3:
            time.sleep(0.2)
            done_by_helper = _scalar(
                database_url,
                "SELECT count(*) FROM scan_work WHERE claimed_by = 'helper-replica' "
                "AND state = 'done'",
            )
        held = _scalar(
            database_url,
            "SELECT count(*) FROM scan_work WHERE claimed_by = 'helper-replica' "
            "AND state = 'claimed'",
        )
        assert done_by_helper >= 3, "the second replica took no work"
        assert held > 0, "the second replica held nothing when killed"
        helper.send_signal(signal.SIGKILL)  # no goodbye: its leases just run out
        output, _ = leader.communicate(timeout=180)
    finally:
        for process in (leader, helper):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)

    assert leader.returncode == 0
    assert output.split()[-1] == "succeeded"
    scans = _scalar(database_url, "SELECT count(*) FROM account_scans")
    distinct = _scalar(database_url, "SELECT count(DISTINCT account_id) FROM account_scans")
    assert scans == distinct == ACCOUNTS  # every account exactly once
    assert _scalar(database_url, "SELECT count(*) FROM scan_work WHERE state <> 'done'") == 0
    # the accounts the killed replica held were taken over by the survivor
    taken_over = _scalar(database_url, "SELECT count(*) FROM scan_work WHERE claims > 1")
    assert taken_over >= held
    by_helper = _scalar(
        database_url, "SELECT count(*) FROM scan_work WHERE claimed_by = 'helper-replica'"
    )
    assert 3 <= by_helper < ACCOUNTS
    per_account = _scalar(
        database_url,
        "SELECT max(n) FROM (SELECT count(*) AS n FROM check_results GROUP BY account_id) AS c",
    )
    least = _scalar(
        database_url,
        "SELECT min(n) FROM (SELECT count(*) AS n FROM check_results GROUP BY account_id) AS c",
    )
    assert 0 < least <= per_account  # every account has its verdicts, none recorded twice
    assert _scalar(database_url, "SELECT count(DISTINCT account_id) FROM check_results") == (
        ACCOUNTS
    )
