"""PostgreSQL advisory locks: one scanner at a time across replicas, one migrator at a time.

Advisory locks belong to the database: every replica pointed at the same database sees the
same locks, and PostgreSQL frees a session-level lock when its connection ends, so a
crashed or killed process never leaves a stale lock behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

# Fixed keys (signed 64-bit), documented in docs/storage.md. The high half spells "VLTS".
SCAN_LOCK_KEY = 0x564C5453_00000001  # held by the replica that is scanning
MIGRATION_LOCK_KEY = 0x564C5453_00000002  # held while `upgrade` runs (transaction-level)
STATE_LOCK_KEY = 0x564C5453_00000003  # held while a run's results update check_state
PRUNE_LOCK_KEY = 0x564C5453_00000004  # held by the replica that is pruning old evidence
REPORT_LOCK_KEY = 0x564C5453_00000005  # held by the replica delivering the scheduled report
# shared by every transaction writing evidence, exclusive while unused documents are removed
DOCUMENTS_LOCK_KEY = 0x564C5453_00000006


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


# One advisory key per member account: the high 24 bits spell "VLA", the low 40 bits are
# the 12-digit account id (10^12 < 2^40), so no two accounts ever share a key.
ACCOUNT_LOCK_NAMESPACE = 0x564C41 << 40


def account_lock_key(account_id: str) -> int:
    return ACCOUNT_LOCK_NAMESPACE | int(account_id)


class AccountLocks:
    """Per-account advisory locks, so a scheduled scan and an event-driven rescan never
    work on the same account at the same time (in this replica or another).

    All locks of one holder live on one dedicated connection (a session may hold many
    advisory locks), so a scan with 64 accounts in flight costs one connection, not 64.
    Calls are serialised: a connection is not safe for concurrent use."""

    def __init__(self, engine: Engine, *, poll_seconds: float = 0.2) -> None:
        self._engine = engine
        self._poll = poll_seconds
        self._conn: Any = None
        self._mutex = threading.Lock()

    def _execute(self, sql: str, key: int) -> bool:
        with self._mutex:
            if self._conn is None:
                self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                return bool(self._conn.execute(text(sql), {"key": key}).scalar_one())
            except DBAPIError as exc:
                if exc.connection_invalidated or isinstance(exc, OperationalError):
                    # the session is gone (database restarted) and its locks with it: the
                    # next call starts a new session instead of reusing the dead one
                    self._conn.invalidate()
                    self._conn.close()
                    self._conn = None
                raise

    def try_acquire(self, account_id: str) -> bool:
        return self._execute("SELECT pg_try_advisory_lock(:key)", account_lock_key(account_id))

    def acquire(self, account_id: str, *, stop: threading.Event | None = None) -> bool:
        """Wait until the account is free (polling, so the shared connection is never
        blocked); False when `stop` is set first."""
        while not self.try_acquire(account_id):
            if stop is not None and stop.is_set():
                return False
            time.sleep(self._poll)
        return True

    def release(self, account_id: str) -> None:
        try:
            self._execute("SELECT pg_advisory_unlock(:key)", account_lock_key(account_id))
        except OperationalError:
            pass  # the connection was lost: the server already dropped the lock

    @contextmanager
    def holding(self, account_id: str) -> Iterator[None]:
        self.acquire(account_id)
        try:
            yield
        finally:
            self.release(account_id)

    def close(self) -> None:
        """Release every lock of this holder (closing the session drops them)."""
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                except Exception:
                    self._conn.invalidate()  # a broken session has lost its locks anyway
                finally:
                    self._conn.close()
                    self._conn = None
