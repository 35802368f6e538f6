"""Processes for the fault suite: `vaultscan scan` subprocesses, a TCP proxy that can take
an endpoint away, and what a scan left in the database (the moto server process is
processes.MotoProcess). Every wait is bounded."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from processes import free_port
from sqlalchemy import create_engine, text

REPO_ROOT = Path(__file__).resolve().parents[2]
# the fault tests catch a scan mid-way, so they look more often than the serve tests
POLL = 0.1


def write_config(path: Path, settings: Any, database_url: str, **values: Any) -> Path:
    data = settings.model_dump(mode="json")
    data["database"] = {"url": database_url}
    data.update(values)
    path.write_text(yaml.safe_dump(data))
    return path


def start_scan(
    config: Path, env: dict[str, str], log_path: Path, *extra: str
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "scanner", *extra, "scan", "--config", str(config)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@dataclass(frozen=True)
class Stored:
    """What the database holds about the scans: runs, per-account rows, results."""

    runs: list[tuple[int, str, str | None]]  # id, status, error
    accounts: list[tuple[int, str, str, str | None]]  # run, account, status, error
    results: list[tuple[int, str, str]]  # run, account, check_key

    def run(self, run_id: int) -> tuple[int, str, str | None]:
        return next(run for run in self.runs if run[0] == run_id)

    def accounts_of(self, run_id: int) -> dict[str, tuple[str, str | None]]:
        return {a: (s, e) for r, a, s, e in self.accounts if r == run_id}

    def results_of(self, run_id: int) -> list[tuple[str, str]]:
        return [(a, k) for r, a, k in self.results if r == run_id]


def stored(url: str) -> Stored:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(text("SELECT id, status, error FROM scan_runs ORDER BY id"))
            accounts = conn.execute(
                text("SELECT scan_run_id, account_id, status, error FROM account_scans")
            )
            results = conn.execute(
                text("SELECT scan_run_id, account_id, check_key FROM check_results")
            )
            return Stored(
                [tuple(row) for row in runs],
                [tuple(row) for row in accounts],
                [tuple(row) for row in results],
            )
    finally:
        engine.dispose()


def assert_nothing_duplicated(state: Stored) -> None:
    """No account twice in a run, no check twice for an account in a run."""
    pairs = [(r, a) for r, a, _, _ in state.accounts]
    assert len(pairs) == len(set(pairs)), "an account was recorded twice in one run"
    assert len(state.results) == len(set(state.results)), "a result was recorded twice"


def send(process: subprocess.Popen[bytes], signum: signal.Signals) -> int:
    process.send_signal(signum)
    return process.wait(timeout=120)


class TcpProxy:
    """A loopback TCP proxy to `target_port`: down() closes its port and every
    connection through it (the endpoint is gone: connections refused), up() opens the
    same port again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
