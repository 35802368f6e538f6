"""Bring a database's schema to the newest migration, safely from several processes."""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, pool, text

from alembic import command
from storage.db import normalise_url
from storage.locks import MIGRATION_LOCK_KEY

ALEMBIC_DIR_ENV = "VAULTSCAN_ALEMBIC_DIR"


class MigrationsNotFoundError(RuntimeError):
    """The alembic/ folder with the migration scripts could not be found."""


def alembic_dir() -> Path:
    """The migration scripts: $VAULTSCAN_ALEMBIC_DIR, else the repository's alembic/."""
    configured = os.environ.get(ALEMBIC_DIR_ENV)
    path = Path(configured) if configured else Path(__file__).resolve().parents[1] / "alembic"
    if not (path / "env.py").is_file():
        raise MigrationsNotFoundError(
            f"no Alembic migrations in {path} (env.py missing); set {ALEMBIC_DIR_ENV} to the "
            "folder holding env.py and versions/ (in the container image: /app/alembic)"
        )
    return path


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(alembic_dir()))
    if url is not None:
        # ConfigParser interpolation would choke on % in a URL-encoded password
        config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(url: str) -> None:
    """Apply every pending migration (`alembic upgrade head`). Idempotent; concurrent
    callers queue on a transaction-level advisory lock, so only one migrates and the others
    then find nothing to do. PostgreSQL's DDL is transactional: a failure changes nothing."""
    config = alembic_config(url)
    # A private engine: migrations run once per process and must not linger in a pool.
    engine = create_engine(normalise_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    engine = create_engine(normalise_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


# Alembic's own table read directly: its MigrationContext logs on every call, too noisy
# for a readiness probe polled every few seconds.
_VERSION_TABLE_EXISTS = text("SELECT to_regclass('alembic_version') IS NOT NULL")
_VERSION = text("SELECT max(version_num) FROM alembic_version")


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated), through the shared pool.
    Raises what the driver raises when the database cannot be reached."""
    with engine.connect() as conn:
        if not conn.execute(_VERSION_TABLE_EXISTS).scalar():
            return None
        return conn.execute(_VERSION).scalar()
