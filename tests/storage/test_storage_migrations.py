"""Migrations: apply cleanly, agree with the models, are idempotent and concurrency-safe."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text

from storage.db import normalise_url
from storage.migrate import MigrationsNotFoundError, alembic_dir, current, head_revision, upgrade
from storage.models import Base

TABLES = {
    "scan_runs",
    "accounts",
    "account_scans",
    "check_results",
    "check_state",
    "drift_events",
    "drift_totals",
    "evidence_documents",
}


def _engine(url: str):
    return create_engine(normalise_url(url), poolclass=pool.NullPool)


def test_fresh_database_has_no_revision(database_url: str) -> None:
    assert current(database_url) is None


def test_upgrade_creates_every_table_at_head(database_url: str) -> None:
    upgrade(database_url)
    assert current(database_url) == head_revision() == "0007"
    engine = _engine(database_url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_and_migrations_agree(migrated_url: str) -> None:
    engine = _engine(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_upgrade_twice_is_a_no_op(migrated_url: str) -> None:
    engine = _engine(migrated_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO scan_runs (status, trigger, host, config_fingerprint,"
                    " simulator_source, accounts_total, accounts_scanned,"
                    " accounts_errored, checks_total, checks_passed, checks_failed,"
                    " checks_errored, disagreements) VALUES ('running', 'cli', 'h',"
                    " '', 'aws', 1, 0, 0, 0, 0, 0, 0, 0)"
                )
            )
        upgrade(migrated_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM scan_runs")).scalar_one() == 1
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert [row[0] for row in versions] == ["0007"]


def test_concurrent_upgrades_migrate_once(database_url: str) -> None:
    callers = 3
    barrier = threading.Barrier(callers)

    def call() -> None:
        barrier.wait()  # start together, so they really contend for the lock
        upgrade(database_url)

    with ThreadPoolExecutor(callers) as pool_:
        for future in [pool_.submit(call) for _ in range(callers)]:
            future.result()  # re-raises e.g. DuplicateTable if two had migrated at once
    assert current(database_url) == "0007"


def test_missing_migrations_folder_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("VAULTSCAN_ALEMBIC_DIR", str(tmp_path))
    with pytest.raises(MigrationsNotFoundError, match="VAULTSCAN_ALEMBIC_DIR"):
        alembic_dir()


def test_migrations_folder_can_be_relocated(monkeypatch: pytest.MonkeyPatch) -> None:
    real = alembic_dir()
    monkeypatch.setenv("VAULTSCAN_ALEMBIC_DIR", str(real))
    assert alembic_dir() == real
    assert head_revision() == "0007"


def test_drift_totals_start_from_the_events_already_recorded(database_url: str) -> None:
    from alembic import command
    from storage.migrate import alembic_config

    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            config = alembic_config(database_url)
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        with engine.begin() as conn:
            run_id = conn.execute(
                text(
                    "INSERT INTO scan_runs (status, trigger, host, config_fingerprint,"
                    " simulator_source, accounts_total, accounts_scanned, accounts_errored,"
                    " checks_total, checks_passed, checks_failed, checks_errored, disagreements)"
                    " VALUES ('succeeded', 'cli', 'h', '', 'aws', 1, 1, 0, 0, 0, 0, 0, 0)"
                    " RETURNING id"
                )
            ).scalar_one()
            for kind in ("regressed", "regressed", "fixed"):
                conn.execute(
                    text(
                        "INSERT INTO drift_events (scan_run_id, check_key, account_id, region,"
                        " role_arn, \"check\", kind) VALUES (:run, 'k', '1', 'r', 'a', 'c', :kind)"
                    ),
                    {"run": run_id, "kind": kind},
                )
        upgrade(database_url)
        with engine.connect() as conn:
            totals = dict(conn.execute(text("SELECT kind, events FROM drift_totals")).all())
    finally:
        engine.dispose()
    assert totals == {"regressed": 2, "fixed": 1}
