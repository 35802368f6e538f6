"""`vaultscan serve` scanning an account whose policy holds a hostile wildcard pattern:
the scan finishes and /healthz answers within 100 ms the whole time.

A backtracking matcher holds the interpreter for minutes on such a pattern, so the
liveness probe would fail and the pod would be restarted into the same scan."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from processes import MotoProcess, aws_environment, scratch_database
from serve_harness import MotoSandbox, ServeProcess, finished_runs
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow

HOSTILE = "?*" * 15 + "Z"
HOSTILE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "Hostile",
            "Effect": "Allow",
            "Action": ["kms:" + HOSTILE, "backup:" + HOSTILE],
            "Resource": ["arn:aws:kms:*:*:key/" + HOSTILE, "arn:aws:backup:*:*:" + HOSTILE],
            "Condition": {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/" + HOSTILE}},
        }
    ],
}
HEALTH_BUDGET_SECONDS = 0.1
# kubelet's default livenessProbe timeoutSeconds: a probe slower than this restarts the pod
HEALTH_WORST_SECONDS = 1.0


@pytest.fixture(scope="module")
def hostile_sandbox() -> Iterator[tuple[MotoSandbox, str]]:
    """A moto organization of its own with the hostile policy on one designated role.

    The moto server runs as a process of its own, so that the latencies measured here are
    the service's, not this process's moto threads competing with the probe."""
    from scanner.sandbox import ADMIN_ROLE_NAME, BACKUP_ROLE_NAME, seed_sandbox_organization

    server = MotoProcess()
    moto = MotoSandbox(endpoint=server.endpoint, sandbox=None)
    try:
        server.start()
        with moto.client_env():
            session = moto.session()
            moto.sandbox = seed_sandbox_organization(session)
            victim = moto.sandbox.healthy_accounts[0].account_id
            credentials = session.client("sts").assume_role(
                RoleArn=f"arn:aws:iam::{victim}:role/{ADMIN_ROLE_NAME}", RoleSessionName="plant"
            )["Credentials"]
            iam = session.client(
                "iam",
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
            iam.put_role_policy(
                RoleName=BACKUP_ROLE_NAME,
                PolicyName="Hostile",
                PolicyDocument=json.dumps(HOSTILE_POLICY),
            )
        yield moto, victim
    finally:
        server.stop(timeout=10)


def _health_latency(url: str) -> float:
    import urllib.request

    started = time.perf_counter()
    with urllib.request.urlopen(f"{url}/healthz", timeout=30) as response:
        assert response.status == 200
    return time.perf_counter() - started


def _account_status(url: str, account_id: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT status FROM account_scans WHERE account_id = :a"), {"a": account_id}
            ).scalar()
    finally:
        engine.dispose()


def test_healthz_answers_fast_while_serve_scans_a_hostile_policy(
    hostile_sandbox, postgres_admin_conninfo, tmp_path
) -> None:
    moto, victim = hostile_sandbox
    with scratch_database(postgres_admin_conninfo) as url:
        serve = ServeProcess.configured(
            tmp_path / "vaultscan.yaml",
            tmp_path / "serve.log",
            moto.settings(),
            aws_environment(moto.endpoint),
            database_url=url,
            interval_minutes=60,
            run_at_startup=True,
            stop_grace_seconds=5,
        )
        try:
            serve.wait_ready()
            latencies: list[float] = []
            give_up = time.monotonic() + 120
            while not finished_runs(url) and time.monotonic() < give_up:
                latencies.append(_health_latency(serve.url))
                time.sleep(0.02)
            runs = finished_runs(url)
            victim_status = _account_status(url, victim)
        finally:
            serve.stop()
    assert runs, f"the scan did not finish:\n{serve.log()}"
    assert len(latencies) >= 3, "the scan finished before /healthz could be asked"
    shown = " ".join(f"{x:.3f}" for x in latencies)
    ordered = sorted(latencies)
    print(
        f"/healthz during the scan: {len(ordered)} probes, median "
        f"{ordered[len(ordered) // 2] * 1000:.1f} ms, 95th percentile "
        f"{ordered[int(len(ordered) * 0.95)] * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
    # The typical probe under 100 ms, every one inside the default liveness timeout. The
    # tail depends on this shared machine's scheduler (load 5-15 on 2 cores), so it is
    # printed above rather than asserted: a backtracking matcher held the interpreter for
    # minutes instead.
    assert ordered[len(ordered) // 2] < HEALTH_BUDGET_SECONDS, shown
    assert ordered[-1] < HEALTH_WORST_SECONDS, shown
    [(_run_id, status)] = runs
    assert status in {"succeeded", "partial"}
    assert victim_status == "ok"  # decided, not cut off: the pattern costs milliseconds
