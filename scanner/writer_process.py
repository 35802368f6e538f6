"""A child process that writes a scan's finished accounts to PostgreSQL.

A writer thread shares the interpreter lock with the scan's threads, which run Python
most of the time (botocore, the engine, decide): each of its statements, and each slice
of its JSON work, waited for the lock behind ~32 threads, so writing took several times
its own CPU in wall time, and that CPU was the scanning process's. Here the writer thread
only pickles a batch (C code, shared policy documents once) and hands it over; the child
builds the rows and runs the very same `record_outcomes` with its own engine (same URL,
`storage.db.make_engine`), on the other core.

Nothing is lost: the parent keeps a batch until the child acknowledges it. A child that
dies is replaced and the batch sent again (the writes are idempotent upserts); after
CHILD_STARTS children have died on the same batch, the write fails like any other. The
child waits out a database restart itself (scanner.db_retry) and hands back any other
error. It exits when the parent closes its pipe (at the end of the scan, or when the
parent dies), and starts in a session of its own, so Ctrl-C reaches only the scan, which
then flushes through the child.

Run as `python -m scanner.writer_process IN_FD OUT_FD` by WriterProcess only.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import os
import pickle
import resource
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scanner.model import AccountOutcome

log = logging.getLogger(__name__)

CHILD_STARTS = 3  # children a batch is sent to before its write fails
# A batch is about 1 MB pickled: with the default 64 KB pipe, handing it over took 16
# writes, each waiting for the interpreter lock again behind the scan's threads.
PIPE_BYTES = 1 << 20
STOP_SECONDS = 30.0  # the child's last write, at most, once the scan is over


class WriterProcessDied(RuntimeError):
    """Writer processes kept dying before acknowledging a batch."""


@dataclass
class WriterFigures:
    """What the writer processes of one recorder did, summed over batches and children."""

    batches: int = 0
    write_seconds: float = 0.0  # inside record_outcomes
    statement_seconds: float = 0.0  # of which inside the database's statements
    cpu_seconds: float = 0.0  # the children's CPU, start-up included
    peak_rss_mb: float = 0.0  # the largest child's
    children: int = 0  # started
    handover_seconds: float = 0.0  # the writer thread's pickling and sending


class WriterProcess:
    """A writer child and the pipes to it: `write` blocks until the batch is stored."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.figures = WriterFigures()
        self.process: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._start()

    def write(self, run_id: int, outcomes: Sequence[AccountOutcome]) -> None:
        started = time.perf_counter()
        message = _framed(pickle.dumps((run_id, list(outcomes)), pickle.HIGHEST_PROTOCOL))
        for attempt in range(CHILD_STARTS):
            if attempt:
                self._start()
            answer = self._exchange(message, started)
            if answer is None:
                log.warning(
                    "writer process died, sending its batch to a new one",
                    extra={"accounts": len(outcomes), "attempt": attempt + 1},
                )
                continue
            kind, value = answer
            if kind == "failed":
                raise value
            self._count(value)
            return
        raise WriterProcessDied(
            f"the writer process died {CHILD_STARTS} times writing {len(outcomes)} finished "
            "accounts; they are not recorded"
        )

    def close(self) -> None:
        """Let the child finish and exit (it stops when its input closes); never leave it
        behind."""
        self._closed = True
        if self.process is None:
            return
        os.close(self._to_child)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._from_child)
        self.process = None

    def _start(self) -> None:
        if self._closed:
            raise WriterProcessDied("the writer process was stopped before its last batch")
        if self.process is not None:
            self._discard()
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        _widen(to_child)
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scanner.writer_process",
                    str(child_in),
                    str(child_out),
                    _log_format(),
                ],
                pass_fds=(child_in, child_out),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(child_in)
            os.close(child_out)
        self._to_child, self._from_child = to_child, from_child
        self.figures.children += 1
        # through the pipe, not the command line: the URL may hold a password
        _send_all(to_child, _framed(self.url.encode()))

    def _exchange(self, message: bytes, started: float) -> tuple[str, Any] | None:
        """The child's answer to `message`, or None when the child died before answering."""
        try:
            _send_all(self._to_child, message)
            self.figures.handover_seconds += time.perf_counter() - started
            answer: tuple[str, Any] = pickle.loads(_read_message(self._from_child))
        except (EOFError, OSError):
            return None
        return answer

    def _discard(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        self.process = None

    def _count(self, figures: dict[str, float]) -> None:
        total = self.figures
        total.batches += 1
        total.write_seconds += figures["write_s"]
        total.statement_seconds += figures["statements_s"]
        total.cpu_seconds += figures["cpu_s"]
        total.peak_rss_mb = max(total.peak_rss_mb, figures["peak_rss_mb"])


# The messages are those of multiprocessing.connection.Connection (a 4-byte big-endian
# length, then the bytes), which the child reads and writes with. The parent frames and
# reads them itself: each system call is one more wait for the interpreter lock, and
# Connection spends two per message where one does.


def _framed(payload: bytes) -> bytes:
    return struct.pack("!i", len(payload)) + payload


def _send_all(pipe: int, message: bytes) -> None:
    view = memoryview(message)
    while view:
        view = view[os.write(pipe, view) :]


def _read_message(pipe: int) -> bytes:
    """One message, usually in one read (the child's answers are small)."""
    received = bytearray()
    while len(received) < 4 or len(received) < 4 + struct.unpack("!i", received[:4])[0]:
        chunk = os.read(pipe, 1 << 16)
        if not chunk:
            raise EOFError("the writer process ended")
        received += chunk
    return bytes(received[4:])


def _widen(pipe: int) -> None:
    try:
        fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: the default size only costs time


def _log_format() -> str:
    """ "json" when this process logs JSON lines (serve), so the child's warnings (a
    database restart waited out) read like the rest of the log; else "text"."""
    from scanner.logs import JsonLinesFormatter

    handlers = logging.getLogger().handlers
    return "json" if any(isinstance(h.formatter, JsonLinesFormatter) for h in handlers) else "text"


def _log_to_stderr(log_format: str) -> None:
    from scanner.logs import JsonLinesFormatter
    from scanner.redact import RedactingFormatter

    handler = logging.StreamHandler()
    text_format = "%(asctime)s %(levelname)s %(name)s %(message)s"  # as scanner.cli logs
    handler.setFormatter(
        JsonLinesFormatter() if log_format == "json" else RedactingFormatter(text_format)
    )
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


# --- the child ---------------------------------------------------------------------------


class _Clocks:
    """Wall time inside the engine's statements (cursor executes), and the CPU time of
    this process already reported."""

    def __init__(self, engine: Engine) -> None:
        from sqlalchemy import event

        self.seconds = 0.0
        self.cpu_reported = 0.0
        self._started = threading.local()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        self._started.at = time.perf_counter()

    def _after(self, *args: Any) -> None:
        self.seconds += time.perf_counter() - self._started.at


def _sendable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a RuntimeError saying what it was."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _serve(receive: Connection, send: Connection) -> None:
    from storage.db import make_engine

    engine = make_engine(receive.recv_bytes().decode())
    clocks = _Clocks(engine)
    # A batch is hundreds of thousands of objects, freed whole by reference counting: the
    # collector's passes while it is unpickled and written would only cost time. Once per
    # batch instead, over what is not frozen (the modules imported so far).
    gc.disable()
    gc.freeze()
    while True:
        try:
            payload = receive.recv_bytes()
        except EOFError:
            break  # the scan is over, or its process died
        send.send(_write_batch(engine, clocks, payload))
        gc.collect()
    engine.dispose()


def _write_batch(engine: Engine, clocks: _Clocks, payload: bytes) -> tuple[str, Any]:
    """Store one batch; the answer for the parent: ("done", figures) or ("failed", error)."""
    from scanner.db_retry import while_database_returns
    from storage.repository import record_outcomes

    started, statements_before = time.perf_counter(), clocks.seconds
    run_id, outcomes = pickle.loads(payload)
    try:
        # a database restart mid-scan is waited out: these verdicts exist nowhere else
        while_database_returns(
            lambda: record_outcomes(engine, run_id, outcomes), what="finished accounts"
        )
    except Exception as exc:
        return "failed", _sendable(exc)
    cpu, clocks.cpu_reported = time.process_time() - clocks.cpu_reported, time.process_time()
    return "done", {
        "write_s": time.perf_counter() - started,
        "statements_s": clocks.seconds - statements_before,
        "cpu_s": cpu,  # since the last answer: the first one counts the start-up
        "peak_rss_mb": own_peak_rss_mb(),
    }


def own_peak_rss_mb() -> float:
    """This process's own peak RSS in MB. Not ru_maxrss in a child: Linux carries the
    parent's peak at the fork across execve, so a child started from a 300 MB scanner would
    report 300 MB; VmHWM is the peak of this process's own memory."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass  # not Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    _log_to_stderr(argv[3])
    receive = Connection(int(argv[1]), writable=False)
    send = Connection(int(argv[2]), readable=False)
    try:
        _serve(receive, send)
    except (BrokenPipeError, EOFError):
        pass  # the parent is gone: nobody waits for an answer
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
