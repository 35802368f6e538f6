"""The pods' contract with the real `vaultscan`, run as the chart defines them.

The rendered migration Job and Deployment are executed as local processes: the image's
ENTRYPOINT plus the container args, the container's environment (Secret references
resolved to a test database), the rendered vaultscan.yaml, a copy of the migrations
outside the repository (as in the image) and no usable HOME. No container runtime is
involved: this checks the chart against the program, not the image build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_tools import CHART_DIR, REPO_ROOT, run, tool

VAULTSCAN = str(Path(sys.executable).with_name("vaultscan"))


def entrypoint() -> list[str]:
    text = (REPO_ROOT / "Dockerfile").read_text()
    [value] = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    command = json.loads(value)
    assert command[0] == "vaultscan"
    return [VAULTSCAN, *command[1:]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render(*sets: str) -> list[dict[str, Any]]:
    args = [item for value in sets for item in ("--set", value)]
    result = run(tool("helm"), "template", "vs", str(CHART_DIR), *args)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pod_process(
    docs: list[dict[str, Any]], kind: str, database_url: str, workdir: Path
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of the first container of `kind`, made local."""
    [owner] = [doc for doc in docs if doc["kind"] == kind]
    spec = owner["spec"]["template"]["spec"]
    container = spec["containers"][0]
    configmap_name = next(v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v)
    [configmap] = [
        doc
        for doc in docs
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == configmap_name
    ]
    config_dir = workdir / "etc-vaultscan"
    config_dir.mkdir(exist_ok=True)
    for name, text in configmap["data"].items():
        (config_dir / name).write_text(text)
    alembic = workdir / "app-alembic"
    if not alembic.exists():
        shutil.copytree(
            REPO_ROOT / "alembic", alembic, ignore=shutil.ignore_patterns("__pycache__")
        )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": "/nonexistent",
        "PYTHONDONTWRITEBYTECODE": "1",
        "VAULTSCAN_ALEMBIC_DIR": str(alembic),
        # no AWS account is reachable: make any AWS call fail fast
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_MAX_ATTEMPTS": "1",
    }
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            assert item["valueFrom"]["secretKeyRef"]["name"] == "vaultscan-db"
            env[item["name"]] = database_url
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    env["VAULTSCAN_CONFIG"] = env["VAULTSCAN_CONFIG"].replace(mount, str(config_dir))
    return [*entrypoint(), *container["args"]], env


def test_migration_job_upgrades_the_database(database_url: str, tmp_path: Path) -> None:
    command, env = pod_process(render(), "Job", database_url, tmp_path)
    assert command[1:] == ["db", "upgrade"]
    cwd = tmp_path / "app"  # like /app in the image: no repository checkout around it
    cwd.mkdir()
    upgraded = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    current = subprocess.run(
        [command[0], "db", "current"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert current.returncode == 0, current.stdout + current.stderr


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.mark.slow
def test_scanner_answers_its_probes_and_stops_on_sigterm(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    docs = render(f"metricsPort={port}", "config.schedule.run_at_startup=false")
    command, env = pod_process(docs, "Deployment", database_url, tmp_path)
    [deployment] = [doc for doc in docs if doc["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while get(base + container["readinessProbe"]["httpGet"]["path"]) != 200:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.5)
        assert get(base + container["livenessProbe"]["httpGet"]["path"]) == 200
        process.send_signal(signal.SIGTERM)
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        output, _ = process.communicate(timeout=grace)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
