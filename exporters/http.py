"""The HTTP endpoint: /metrics (prometheus-client's own exposition), /healthz, /readyz.

/healthz answers as long as the process can serve requests (liveness). /readyz answers
200 only when the database is reachable and its schema is at the newest migration, so a
Kubernetes Service sends scrapes only to replicas that can read the truth.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

# (ready, reason): reason is shown to the caller of /readyz
ReadinessCheck = Callable[[], tuple[bool, str]]
StartResponse = Callable[..., Any]


# At most this many requests are served at once; one more connection is answered 503
# and closed at once, so a flood of half-sent requests cannot make a thread per socket.
MAX_WORKERS = 16
# A connection that sends nothing for this long is closed (half-sent requests, idle
# keep-alives): Prometheus and kubelet send a whole request at once.
IDLE_TIMEOUT_SECONDS = 10.0
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n"
)


class _BoundedWSGIServer(WSGIServer):
    """A WSGI server with a fixed number of worker slots (a thread per request, at most
    MAX_WORKERS alive) and an idle timeout per connection."""

    daemon_threads = True  # a slow scrape never blocks shutdown
    request_queue_size = 64

    def __init__(self, *args: Any, max_workers: int = MAX_WORKERS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(max_workers)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _refuse(request)
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve_one, args=(request, client_address), daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # cannot start a thread: refuse rather than die
            self._slots.release()
            _refuse(request)
            self.shutdown_request(request)

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away or timed out: not worth a traceback on stderr
        log.debug("http: request from %s failed", client_address, exc_info=True)


def _refuse(request: Any) -> None:
    try:
        request.settimeout(0.5)
        request.sendall(_BUSY)
    except OSError:
        pass


class _QuietHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_SECONDS  # socket timeout: an idle connection is closed

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


def build_app(registry: CollectorRegistry, readiness: ReadinessCheck) -> Callable[..., Any]:
    """The endpoints; HEAD is answered like GET without the body (probes and load
    balancers use it)."""
    return _head_as_get(_endpoints(registry, readiness))


def _head_as_get(app: Callable[..., Any]) -> Callable[..., Any]:
    def head_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "HEAD":
            return app(environ, start_response)
        answered: list[tuple[str, list[tuple[str, str]]]] = []
        body = app(
            {**environ, "REQUEST_METHOD": "GET"},
            lambda status, headers, *_: answered.append((status, list(headers))),
        )
        try:
            length = sum(len(chunk) for chunk in body)  # the GET's, for Content-Length
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        status, headers = answered[0]
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers.append(("Content-Length", str(length)))
        start_response(status, headers)
        return []

    return head_app


def _endpoints(registry: CollectorRegistry, readiness: ReadinessCheck) -> Callable[..., Any]:
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
                host, port, app, server_class=_BoundedWSGIServer, handler_class=_QuietHandler
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
