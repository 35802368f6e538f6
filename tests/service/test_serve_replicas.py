"""Several `vaultscan serve` processes on one database: never two scans at once, and a
stopped service never leaves a run "running"."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from processes import aws_environment, wait_until
from prometheus_client.parser import text_string_to_metric_families
from serve_harness import REPO_ROOT, MotoSandbox, ServeProcess
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow


def _runs(url: str) -> list[tuple[int, str, datetime, datetime | None]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    text(
                        "SELECT id, status, started_at, finished_at FROM scan_runs"
                        " ORDER BY started_at"
                    )
                )
            ]
    finally:
        engine.dispose()


def _scheduler_outcomes(serve: ServeProcess) -> dict[str, float]:
    families = text_string_to_metric_families(serve.metrics())
    family = next(f for f in families if f.name == "vaultscan_scheduler_scans")
    return {s.labels["outcome"]: s.value for s in family.samples if s.name.endswith("_total")}


def test_replicas_never_scan_concurrently(
    moto_sandbox: MotoSandbox, database_url: str, tmp_path: Path
) -> None:
    env = aws_environment(moto_sandbox.endpoint)
    replicas = []
    try:
        # two scheduled replicas start together: both try the start-up scan
        for name in ("a", "b"):
            replicas.append(
                ServeProcess.configured(
                    tmp_path / f"{name}.yaml",
                    tmp_path / f"{name}.log",
                    moto_sandbox.settings(),
                    env,
                    database_url=database_url,
                    interval_minutes=60,
                    run_at_startup=True,
                )
            )
        for serve in replicas:
            serve.wait_ready()

        def both_attempted() -> list[dict[str, float]] | None:
            outcomes = [_scheduler_outcomes(serve) for serve in replicas]
            return outcomes if all(sum(o.values()) >= 1 for o in outcomes) else None

        outcomes = wait_until(both_attempted, timeout=60, what="both start-up attempts")
        assert sorted((o["scanned"], o["skipped_lock_held"]) for o in outcomes) == [
            (0, 1),
            (1, 0),
        ], [serve.log() for serve in replicas]

        # two one-shot replicas at once, while the scheduled ones are idle
        once = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scanner",
                    "serve",
                    "--config",
                    str(tmp_path / "a.yaml"),
                    "--once",
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=90)[0] for process in once]
        codes = sorted(process.returncode for process in once)
        assert codes == [0, 75], outputs
    finally:
        for serve in replicas:
            serve.stop()

    runs = _runs(database_url)
    assert [status for _, status, _, _ in runs] == ["succeeded", "succeeded"]
    for (_, _, _, first_end), (_, _, second_start, _) in zip(runs, runs[1:], strict=False):
        assert first_end is not None and first_end <= second_start, "scans overlapped"


def test_sigterm_during_a_scan_records_it_interrupted(
    moto_sandbox: MotoSandbox, database_url: str, tmp_path: Path
) -> None:
    serve = ServeProcess.configured(
        tmp_path / "vaultscan.yaml",
        tmp_path / "serve.log",
        moto_sandbox.settings(),
        aws_environment(moto_sandbox.endpoint),
        database_url=database_url,
        interval_minutes=60,
        run_at_startup=True,
        stop_grace_seconds=0,
    )
    try:
        wait_until(
            lambda: [r for r in _runs(database_url) if r[1] == "running"],
            timeout=60,
            what="a running scan",
        )
        serve.process.send_signal(signal.SIGTERM)
        code = serve.wait(timeout=40)
    finally:
        serve.stop()
    assert code == 0, serve.log()
    runs = _runs(database_url)
    assert [status for _, status, _, _ in runs] == ["interrupted"], serve.log()
    assert runs[0][3] is not None
