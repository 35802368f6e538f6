"""URLs and engines."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from storage.db import (
    DatabaseConfigError,
    make_engine,
    mask_url,
    normalise_url,
    resolve_database_url,
)


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u:p@db:5432/vaultscan",
        "postgres://u:p@db:5432/vaultscan",
        "postgresql+psycopg://u:p@db:5432/vaultscan",
        " postgresql://u:p@db:5432/vaultscan\n",
    ],
)
def test_urls_get_the_psycopg_driver(given: str) -> None:
    assert normalise_url(given) == "postgresql+psycopg://u:p@db:5432/vaultscan"


def test_special_characters_in_password_survive() -> None:
    url = normalise_url("postgresql://u:p%40ss%2Fw@db/vaultscan")
    assert url == "postgresql+psycopg://u:p%40ss%2Fw@db/vaultscan"


@pytest.mark.parametrize("bad", ["mysql://u@db/x", "sqlite:///x.db", "not a url"])
def test_non_postgres_urls_are_refused(bad: str) -> None:
    with pytest.raises(DatabaseConfigError, match="postgresql://"):
        normalise_url(bad)


def test_mask_hides_password() -> None:
    masked = mask_url("postgresql+psycopg://vault:s3cret@db:5432/vaultscan")
    assert "s3cret" not in masked and masked == "postgresql+psycopg://vault:***@db:5432/vaultscan"


def test_configured_url_is_used_without_embedded(tmp_path: Path) -> None:
    settings = SimpleNamespace(
        database=SimpleNamespace(url="postgresql://u:p@db/vaultscan", data_dir=tmp_path)
    )
    assert resolve_database_url(settings) == "postgresql+psycopg://u:p@db/vaultscan"
    assert list(tmp_path.iterdir()) == []  # no embedded server was started


def test_engine_is_shared_per_url_and_connects(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert make_engine(database_url.replace("postgresql+psycopg", "postgresql")) is engine
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_embedded_url_escapes_the_socket_path() -> None:
    from sqlalchemy.engine import make_url

    from storage.embedded import embedded_url

    url = make_url(embedded_url("/srv/a b+c/pgdata", 5432, "vaultscan"))
    assert url.query == {"host": "/srv/a b+c/pgdata", "port": "5432"}
    assert (url.drivername, url.username, url.database) == (
        "postgresql+psycopg",
        "postgres",
        "vaultscan",
    )


def test_describe_error_keeps_only_what_the_driver_said() -> None:
    from sqlalchemy.exc import OperationalError

    from storage.db import describe_error

    driver = Exception("connection failed: Connection refused\n\tIs the server running?\n")
    wrapped = OperationalError("SELECT 1", {}, driver)
    assert describe_error(wrapped) == (
        "connection failed: Connection refused; Is the server running?"
    )
    assert describe_error(RuntimeError("first line\nsecond line")) == "first line"
    assert describe_error(RuntimeError()) == "RuntimeError"
