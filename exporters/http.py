"""The HTTP endpoint: /metrics (prometheus-client's own exposition), /healthz, /readyz.

/healthz answers as long as the process can serve requests (liveness). /readyz answers
200 only when the database is reachable and its schema is at the newest migration, so a
Kubernetes Service sends scrapes only to replicas that can read the truth.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

# (ready, reason): reason is shown to the caller of /readyz
ReadinessCheck = Callable[[], tuple[bool, str]]
StartResponse = Callable[..., Any]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scrape never blocks shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


def build_app(registry: CollectorRegistry, readiness: ReadinessCheck) -> Callable[..., Any]:
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            return _plain(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            try:
                ready, reason = readiness()
            except Exception as exc:  # a readiness probe must answer, not crash
                ready, reason = False, f"readiness check failed: {type(exc).__name__}"
            status = "200 OK" if ready else "503 Service Unavailable"
            return _plain(start_response, status, reason + "\n")
        if path == "/":
            return _plain(start_response, "200 OK", "vaultscan: /metrics /healthz /readyz\n")
        return _plain(start_response, "404 Not Found", "not found: try /metrics\n")

    return app


def _plain(start_response: StartResponse, status: str, body: str) -> list[bytes]:
    data = body.encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))]
    )
    return [data]


class MetricsServer:
    """The endpoint on a background thread; `close()` stops it."""

    def __init__(self, host: str, port: int, app: Callable[..., Any]) -> None:
        try:
            self._server = make_server(
                host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen on {host}:{port} for /metrics ({exc.strerror}); set "
                "metrics.port (VAULTSCAN_METRICS__PORT) to a free port",
            ) from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="vaultscan-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_http_server(
    host: str, port: int, registry: CollectorRegistry, readiness: ReadinessCheck
) -> MetricsServer:
    """Serve /metrics, /healthz and /readyz on `host:port` (port 0: any free port)."""
    server = MetricsServer(host, port, build_app(registry, readiness)).start()
    log.info("serving metrics", extra={"host": host, "port": server.port})
    return server
