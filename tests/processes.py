"""What the tests that start real processes share: loopback ports, bounded waits, an AWS
environment that reaches only a local endpoint, a moto server process, and databases a
subprocess can reach."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

import psycopg

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T], *, timeout: float, what: str, every: float = 0.25) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last_error!r})")


def aws_environment(endpoint: str) -> dict[str, str]:
    """The environment of a process that talks to `endpoint` and nothing else."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "VAULTSCAN_"))
    }
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/nonexistent/vaultscan-test-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/vaultscan-test-credentials",
        PYTHONUNBUFFERED="1",
    )
    return env


@contextmanager
def aws_client_env(endpoint: str) -> Iterator[None]:
    """This process's environment pointed at `endpoint`, for boto3 calls made here."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(aws_environment(endpoint))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def scratch_database(admin_conninfo: str) -> Iterator[str]:
    """An empty database of its own, as a SQLAlchemy URL (psycopg 3 driver); dropped after."""
    name = f"vaultscan_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(admin_conninfo)
    password = f":{info['password']}" if info.get("password") else ""
    host, port = info.get("host", "127.0.0.1"), info.get("port", "5432")
    try:
        yield f"postgresql+psycopg://{info.get('user', 'postgres')}{password}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin_conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class MotoProcess:
    """A moto server (`python -m scanner.sandbox_aws`: keeps AWS managed keys AWS managed)
    on a fixed port; stop() and start() keep the port, so a scan
    sees its AWS endpoint vanish and come back. A restarted server is empty."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scanner.sandbox_aws", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=30, what="moto server", every=0.1)
        return self

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2) as response:
            return response.status == 200

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=timeout)
        self.process = None

    def client_env(self) -> AbstractContextManager[None]:
        return aws_client_env(self.endpoint)
