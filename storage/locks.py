"""PostgreSQL advisory locks: one scanner at a time across replicas, one migrator at a time.

Advisory locks belong to the database: every replica pointed at the same database sees the
same locks, and PostgreSQL frees a session-level lock when its connection ends, so a
crashed or killed process never leaves a stale lock behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

# Fixed keys (signed 64-bit), documented in docs/storage.md. The high half spells "VLTS".
SCAN_LOCK_KEY = 0x564C5453_00000001  # held by the replica that is scanning
MIGRATION_LOCK_KEY = 0x564C5453_00000002  # held while `upgrade` runs (transaction-level)
STATE_LOCK_KEY = 0x564C5453_00000003  # held while a run's results update check_state
PRUNE_LOCK_KEY = 0x564C5453_00000004  # held by the replica that is pruning old evidence


def _split(key: int) -> tuple[int, int]:
    # pg_locks shows a bigint advisory key as classid (high 32 bits), objid (low 32 bits)
    return key >> 32, key & 0xFFFFFFFF


@contextmanager
def scan_lock(engine: Engine) -> Iterator[bool]:
    """Try to take the scan lock without waiting; yield whether it was acquired.

    The lock lives on a connection of its own, checked out for the whole block, and is
    released on exit (or by PostgreSQL if the process dies)."""
    with try_lock(engine, SCAN_LOCK_KEY) as acquired:
        yield acquired


@contextmanager
def try_lock(engine: Engine, key: int) -> Iterator[bool]:
    """Try to take the session-level advisory lock `key` without waiting (see scan_lock)."""
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    acquired = False
    try:
        acquired = bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
        )
        yield acquired
    finally:
        try:
            if acquired:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        except Exception:
            # The connection broke, so the server already dropped the lock; make sure the
            # pool does not hand the dead connection out again.
            conn.invalidate()
        finally:
            conn.close()


def lock_is_held(engine: Engine) -> bool:
    """Whether any session (this process or another replica) holds the scan lock."""
    classid, objid = _split(SCAN_LOCK_KEY)
    query = text(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid = :classid AND objid = :objid AND objsubid = 1)"
    )
    with engine.connect() as conn:
        return bool(conn.execute(query, {"classid": classid, "objid": objid}).scalar_one())
