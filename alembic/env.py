"""Alembic environment for vaultscan.

`storage.migrate.upgrade` passes an open connection (already holding the migration lock)
in `config.attributes["connection"]`; the `alembic` command line instead connects to the
URL given with `-x url=...` or in VAULTSCAN_DATABASE__URL.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from sqlalchemy import create_engine, pool

from alembic import context
from storage.db import normalise_url
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "VAULTSCAN_DATABASE__URL"
    )
    if not url:
        raise SystemExit(
            "no database URL: pass -x url=postgresql://USER@HOST/DB or set "
            "VAULTSCAN_DATABASE__URL (or run `vaultscan db upgrade`)"
        )
    return normalise_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name)  # only for the command line: keep app logging
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
