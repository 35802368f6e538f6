"""Finished accounts are written to PostgreSQL by a writer thread, in batches, while the
scan goes on: the scan never waits for the database except at the end (flush).

Writing an account's verdicts costs a few milliseconds of the database's time and of this
process's (the evidence is JSON); done inline, the scan loop stood still meanwhile and
fewer accounts were in flight. Nothing is lost: a failed write keeps its batch, stops
further writes and is raised to the scan on its next add() or at flush().

With `separate_process`, the writer thread hands each batch to a writer process
(scanner.writer_process) instead of writing it itself: the JSON and the statements then
neither wait for nor take the interpreter lock the scan's threads need. It costs the
child's start (about a second of imports, off the scan's path), so the runner asks for it
only for scans of many accounts.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scanner.model import AccountOutcome
    from scanner.writer_process import WriterProcess

# Write when this many accounts are waiting, or this long after the first one arrived.
BATCH_SIZE = 10
BATCH_SECONDS = 2.0
MAX_BATCH = 50  # accounts per write when the writer is behind
# Verdicts waiting for the writer at most (each holds its scenario and explanation, a few
# KB of Python objects beyond the documents its role shares): beyond, the scan waits, so
# memory stays bounded when the database is slower than AWS. Counted in verdicts, not
# accounts, since an account may have a few or hundreds; about 100 accounts of 60.
MAX_PENDING_VERDICTS = 6000


class BackgroundRecorder:
    def __init__(self, engine: Engine, run_id: int, *, separate_process: bool = False) -> None:
        self.engine = engine
        self.run_id = run_id
        self.process: WriterProcess | None = None
        if separate_process:
            from scanner.writer_process import WriterProcess, engine_url

            self.process = WriterProcess(engine_url(engine))
        self.pending: list[AccountOutcome] = []
        self.pending_verdicts = 0
        self.error: BaseException | None = None
        self._writing = False
        self._closed = False
        self._oldest = 0.0
        self._flushing = 0  # threads waiting in flush(): write now, however few
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._write_loop, name="scan-writer", daemon=True)
        self._thread.start()

    def add(self, outcome: AccountOutcome) -> None:
        with self._changed:
            self._raise_error()
            while self.pending_verdicts >= MAX_PENDING_VERDICTS and self.error is None:
                self._changed.wait(0.5)
            self._raise_error()
            if not self.pending:
                self._oldest = time.monotonic()
            self.pending.append(outcome)
            self.pending_verdicts += len(outcome.results)
            if len(self.pending) >= BATCH_SIZE:
                self._changed.notify_all()

    def flush(self) -> None:
        """Write everything added so far; raises the writer's error, if any."""
        with self._changed:
            self._flushing += 1
            try:
                self._changed.notify_all()
                while (self.pending or self._writing) and self.error is None:
                    self._changed.wait(0.5)
            finally:
                self._flushing -= 1
            self._raise_error()

    def stop(self) -> None:
        """Stop the writer thread once it has written what it can (flush first to be sure
        everything is written; after a write error the rest is not attempted)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout=30)
        if self.process is not None:
            self.process.close()  # the child never outlives the scan

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def _due(self) -> bool:
        if not self.pending or self.error is not None:
            return False
        waited = time.monotonic() - self._oldest
        return bool(self._flushing) or len(self.pending) >= BATCH_SIZE or waited >= BATCH_SECONDS

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                while not self._closed and not self._due():
                    self._changed.wait(0.2)
                if not self._due():
                    return  # closed, nothing left to write
                batch = self.pending[:MAX_BATCH]
                self._writing = True
            try:
                self._write(batch)
            except BaseException as exc:  # kept for the scan thread; the batch stays
                with self._changed:
                    self.error = exc
                    self._writing = False
                    self._changed.notify_all()
                return
            with self._changed:
                del self.pending[: len(batch)]
                self.pending_verdicts -= sum(len(outcome.results) for outcome in batch)
                if self.pending:
                    self._oldest = time.monotonic()
                self._writing = False
                self._changed.notify_all()

    def _write(self, batch: list[AccountOutcome]) -> None:
        if self.process is not None:
            self.process.write(self.run_id, batch)  # it waits out a database restart
            return
        from scanner.db_retry import while_database_returns
        from storage.repository import record_outcomes

        # a database restart mid-scan is waited out: these verdicts exist nowhere else
        while_database_returns(
            lambda: record_outcomes(self.engine, self.run_id, batch), what="finished accounts"
        )
