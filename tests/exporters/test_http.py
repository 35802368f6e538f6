"""The HTTP endpoint on a loopback port: /metrics, /healthz and /readyz."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine

from exporters.http import MetricsServer, start_http_server
from exporters.metrics import build_registry
from scanner.service import database_readiness
from storage.migrate import upgrade


def _get(server: MetricsServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def server(engine: Engine) -> Iterator[MetricsServer]:
    registry = build_registry(engine, interval_seconds=300)
    server = start_http_server("127.0.0.1", 0, registry, database_readiness(engine))
    yield server
    server.close()


def test_readyz_waits_for_the_migrated_schema(database_url: str, server: MetricsServer) -> None:
    status, body = _get(server, "/readyz")
    assert status == 503
    assert "vaultscan db upgrade" in body
    upgrade(database_url)
    assert _get(server, "/readyz") == (200, "ready\n")


def test_healthz_and_unknown_paths(server: MetricsServer) -> None:
    assert _get(server, "/healthz") == (200, "ok\n")
    assert _get(server, "/nope")[0] == 404


def test_metrics_are_valid_exposition(database_url: str, server: MetricsServer) -> None:
    upgrade(database_url)
    status, body = _get(server, "/metrics")
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(body)}
    assert families["vaultscan_database_up"].samples[0].value == 1
    assert families["vaultscan_scan_interval_seconds"].samples[0].value == 300
    assert "vaultscan_drift_events" in families
    assert "process_start_time_seconds" in families


def test_port_in_use_is_an_actionable_error(server: MetricsServer) -> None:
    with pytest.raises(OSError, match="metrics.port"):
        start_http_server("127.0.0.1", server.port, build_registry(None), lambda: (True, ""))


def _head(server: MetricsServer, path: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_head_is_answered_like_get_without_a_body(database_url: str, server) -> None:
    upgrade(database_url)
    status, headers, body = _head(server, "/metrics")
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) > 100
    assert headers["Content-Type"].startswith("text/plain")
    assert _head(server, "/healthz")[:1] == (200,)


def test_half_sent_requests_take_bounded_threads_and_are_dropped_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket
    import threading
    import time

    from exporters import http

    monkeypatch.setattr(http._QuietHandler, "timeout", 1.0)
    server = start_http_server("127.0.0.1", 0, build_registry(None), lambda: (True, "ok"))
    sockets: list[socket.socket] = []
    try:
        before = threading.active_count()
        for _ in range(300):  # each sends half a request and waits
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        time.sleep(0.3)
        assert threading.active_count() - before <= http.MAX_WORKERS
        # none is left hanging: each is refused at once (503) or, holding a worker, closed
        # by the server once idle for its timeout
        answers = []
        for sock in sockets:
            sock.settimeout(10)
            answers.append(sock.recv(64))
        refused = sum(answer.startswith(b"HTTP/1.0 503") for answer in answers)
        closed = sum(answer == b"" for answer in answers)
        assert refused + closed == len(sockets)
        assert refused >= len(sockets) // 2 and closed >= http.MAX_WORKERS
        assert _get(server, "/healthz") == (200, "ok\n")
    finally:
        for sock in sockets:
            sock.close()
        server.close()
