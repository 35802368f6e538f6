"""Two processes share one scan's accounts through PostgreSQL; one is killed mid-scan and
every account is still recorded exactly once, in a full scan and in an incremental one
(where the survivor carries the killed replica's accounts over as a single process would).

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
    "incremental": {{"enabled": True}},
}})
engine = make_engine(settings.database.url)
"""
LEAD = (
    COMMON
    + """
from scanner.runner import run_scan
full = sys.argv[1] == "full"
report = run_scan(settings, engine=engine, trigger="cli", keep_results=False, full=full)
print("run", report.run_id, report.unchanged_accounts, report.totals.status, flush=True)
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


def _kill_a_replica_mid_scan(database_url: str, endpoint: str, mode: str) -> tuple[str, int]:
    """A shared scan (`mode`: full or incremental) whose second replica is killed while it
    holds accounts; returns the leader's output and how many accounts the killed one held."""
    leader = _start(LEAD, database_url, endpoint, mode)
    helper = _start(JOIN, database_url, endpoint, "helper-replica")
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
    return output, held


def test_a_replica_killed_mid_scan_loses_no_account(fake_aws: str, database_url: str) -> None:
    upgrade(database_url)
    _, held = _kill_a_replica_mid_scan(database_url, fake_aws, "full")

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


def test_a_replica_killed_mid_incremental_scan_loses_no_account(
    fake_aws: str, database_url: str
) -> None:
    upgrade(database_url)
    first = _start(LEAD, database_url, fake_aws, "full")  # records the fingerprints
    output, _ = first.communicate(timeout=180)
    assert first.returncode == 0 and output.split()[-1] == "succeeded"
    full_run = int(output.split()[1])

    output, held = _kill_a_replica_mid_scan(database_url, fake_aws, "incremental")

    run = int(output.split()[1])
    assert int(output.split()[2]) == ACCOUNTS  # the leader counts every replica's accounts

    def of_run(query: str) -> int:
        return _scalar(database_url, query.replace(":run", str(run)))

    # every account exactly once, all carried over from the full run: the survivor took
    # the killed replica's accounts over and decided them as it would have
    assert of_run("SELECT count(*) FROM account_scans WHERE scan_run_id = :run") == ACCOUNTS
    assert (
        of_run(
            "SELECT count(DISTINCT account_id) FROM account_scans WHERE scan_run_id = :run "
            f"AND carried_from_run_id = {full_run}"
        )
        == ACCOUNTS
    )
    assert of_run("SELECT count(*) FROM scan_work WHERE scan_run_id = :run AND claims > 1") >= held
    assert (
        of_run(
            "SELECT count(*) FROM scan_work WHERE scan_run_id = :run "
            "AND claimed_by = 'helper-replica' AND state = 'done'"
        )
        >= 3
    )
    # the carried verdicts are the full run's, each once
    assert of_run("SELECT count(*) FROM check_results WHERE scan_run_id = :run") == _scalar(
        database_url, f"SELECT count(*) FROM check_results WHERE scan_run_id = {full_run}"
    )
    assert (
        of_run(
            "SELECT count(*) FROM (SELECT check_key FROM check_results WHERE scan_run_id = :run "
            "EXCEPT SELECT check_key FROM check_results WHERE scan_run_id = "
            f"{full_run}) AS extra"
        )
        == 0
    )
