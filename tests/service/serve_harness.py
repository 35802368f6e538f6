"""Real processes for the end-to-end tests: a moto server holding the sandbox organization,
`vaultscan serve` subprocesses, and a Prometheus server. Everything listens on loopback
ports chosen here, and every wait is bounded."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from processes import aws_client_env, free_port, wait_until
from sqlalchemy import create_engine, text

REPO_ROOT = Path(__file__).resolve().parents[2]


def http_get(url: str, *, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def write_config(
    path: Path, settings: Any, *, database_url: str, metrics_port: int, **schedule: Any
) -> Path:
    """A vaultscan.yaml for the sandbox settings, pointed at this database and port."""
    values = settings.model_dump(mode="json")
    values["database"] = {"url": database_url}
    values["metrics"] = {"host": "127.0.0.1", "port": metrics_port}
    values["schedule"] = {**values["schedule"], **schedule}
    path.write_text(yaml.safe_dump(values))
    return path


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int | None

    @classmethod
    def start(
        cls,
        config: Path,
        env: dict[str, str],
        log_path: Path,
        *extra: str,
        metrics_port: int | None = None,
    ) -> ServeProcess:
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "scanner", "-v", "serve", "--config", str(config), *extra],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return cls(process, log_path, metrics_port)

    @classmethod
    def configured(
        cls,
        config: Path,
        log_path: Path,
        settings: Any,
        env: dict[str, str],
        *,
        database_url: str,
        **schedule: Any,
    ) -> ServeProcess:
        """Write `config` for these settings, this database, a free metrics port and
        `schedule`, then start serve with it."""
        port = free_port()
        write_config(config, settings, database_url=database_url, metrics_port=port, **schedule)
        return cls.start(config, env, log_path, metrics_port=port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log()}")
            return http_get(f"{self.url}/readyz", timeout=2)[0] == 200

        try:
            wait_until(ready, timeout=timeout, what="serve /readyz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- serve log ---\n{self.log()}") from None

    def metrics(self) -> str:
        status, body = http_get(f"{self.url}/metrics")
        assert status == 200, body
        return body

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"serve still running after {timeout}s:\n{self.log()}") from None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Kubernetes sends; kill only if it does not stop in `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise AssertionError(f"serve ignored SIGTERM:\n{self.log()}") from None
        return int(self.process.returncode)


@dataclass
class PrometheusProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @classmethod
    def start(
        cls,
        binary: str,
        workdir: Path,
        targets: list[str],
        rule_files: list[Path] = (),
    ) -> PrometheusProcess:
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": "vaultscan", "static_configs": [{"targets": targets}]}],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        log_path = workdir / "prometheus.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.enable-lifecycle",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        prometheus = cls(process, port, log_path)
        try:
            wait_until(
                lambda: http_get(f"{prometheus.base}/-/ready", timeout=2)[0] == 200,
                timeout=30,
                what="prometheus /-/ready",
            )
        except AssertionError:
            prometheus.stop()
            raise AssertionError(f"prometheus did not start:\n{log_path.read_text()}") from None
        return prometheus

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Run an instant query; raise with Prometheus's own error when it does not parse."""
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url)
        payload = json.loads(body)
        if status != 200 or payload.get("status") != "success":
            raise AssertionError(f"query failed ({status}): {expr}\n{payload.get('error')}")
        return payload["data"]["result"]

    def firing(self, alertname: str) -> list[dict[str, Any]]:
        """The alerts named `alertname` that are firing now."""
        _, body = http_get(f"{self.base}/api/v1/alerts")
        alerts = json.loads(body)["data"]["alerts"]
        return [
            a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class MotoSandbox:
    endpoint: str
    sandbox: Any  # scanner.sandbox.SandboxOrg

    def client_env(self) -> AbstractContextManager[None]:
        """This process's environment pointed at the moto server, for boto3 calls here."""
        return aws_client_env(self.endpoint)

    def session(self) -> Any:
        import boto3

        return boto3.Session(region_name="us-east-1")

    def settings(self) -> Any:
        from scanner.sandbox import sandbox_settings

        return sandbox_settings(self.sandbox)


def finished_runs(url: str) -> list[tuple[int, str]]:
    """The finished scans in the database at `url`: (id, status), oldest first."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    text(
                        "SELECT id, status FROM scan_runs WHERE finished_at IS NOT NULL ORDER BY id"
                    )
                )
            ]
    finally:
        engine.dispose()
