"""The scan lock: one holder across engines (replicas), freed on exit or when a holder dies."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from storage.db import normalise_url
from storage.locks import SCAN_LOCK_KEY, lock_is_held, scan_lock


def _second_engine(url: str):
    # A separate Engine stands for another replica: its own pool, its own sessions.
    return create_engine(normalise_url(url))


def test_only_one_holder_at_a_time(engine, migrated_url: str) -> None:
    other = _second_engine(migrated_url)
    try:
        assert lock_is_held(engine) is False
        with scan_lock(engine) as first:
            assert first is True
            assert lock_is_held(other) is True
            with scan_lock(other) as second:
                assert second is False
            assert lock_is_held(engine) is True  # the loser's exit does not free it
        assert lock_is_held(other) is False
        with scan_lock(other) as again:
            assert again is True
    finally:
        other.dispose()


def test_lock_freed_when_holder_connection_dies(engine, migrated_url: str) -> None:
    other = _second_engine(migrated_url)
    try:
        with scan_lock(engine) as acquired:
            assert acquired
            with other.connect() as conn:
                # What PostgreSQL does when a replica's process dies: its session ends.
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid, 5000) FROM pg_locks"
                        " WHERE locktype = 'advisory' AND classid = :c AND objid = :o"
                        " AND database = (SELECT oid FROM pg_database"
                        "                 WHERE datname = current_database())"
                    ),
                    {"c": SCAN_LOCK_KEY >> 32, "o": SCAN_LOCK_KEY & 0xFFFFFFFF},
                )
            assert lock_is_held(other) is False
            with scan_lock(other) as taken_over:
                assert taken_over is True
        # The dead connection was invalidated, not returned to the pool: the engine works.
        assert lock_is_held(engine) is False
        with scan_lock(engine) as reacquired:
            assert reacquired is True
    finally:
        other.dispose()


def test_lock_is_per_database(engine, database_url: str, postgres_admin_conninfo: str) -> None:
    # Another database on the same server (another deployment) has its own lock.
    admin = create_engine(normalise_url(postgres_admin_conninfo), isolation_level="AUTOCOMMIT")
    try:
        with scan_lock(engine) as acquired, scan_lock(admin) as elsewhere:
            assert acquired and elsewhere
    finally:
        admin.dispose()


def test_documented_lock_keys_match() -> None:
    from pathlib import Path

    from storage.locks import MIGRATION_LOCK_KEY, STATE_LOCK_KEY

    doc = (Path(__file__).resolve().parents[2] / "docs" / "storage.md").read_text()
    for key in (SCAN_LOCK_KEY, MIGRATION_LOCK_KEY, STATE_LOCK_KEY):
        assert f"`{key:#018X}`".replace("0X", "0x") in doc and str(key) in doc
    assert f"classid = {SCAN_LOCK_KEY >> 32}" in doc
