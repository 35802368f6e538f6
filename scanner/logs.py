"""What a long-running service logs: JSON lines for log pipelines, and the progress of a
scan every few seconds (accounts done of total), so an operator watching a scan of a large
organization sees it move."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from scanner.model import Account
from scanner.redact import RedactingFormatter, mask_secrets

log = logging.getLogger("scanner.progress")

# attributes every LogRecord has; anything else on a record came from `extra={...}`
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonLinesFormatter(RedactingFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the call's
    `extra` fields, and the traceback when there is one; secrets masked like the text log."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(entry, ensure_ascii=False))


def use_json_lines() -> None:
    """Switch every handler of the root logger to JSON lines."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonLinesFormatter())


class ProgressLog:
    """A scan's progress callback (scanner.runner.Progress) that logs, every `interval`
    seconds while the scan runs, how many accounts are done of how many, and once at the
    end. Use as a context manager around the scan."""

    def __init__(self, interval: float = 10.0) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._done = 0
        self._total: int | None = None
        self._last: Account | None = None
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scan-progress", daemon=True)

    def __call__(self, done: int, total: int, account: Account | None) -> None:
        with self._lock:
            self._done, self._total, self._last = done, total, account

    def __enter__(self) -> ProgressLog:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(self._interval + 1)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.log_now()

    def log_now(self) -> None:
        with self._lock:
            done, total, last = self._done, self._total, self._last
        if total is None:
            return  # the organization is still being listed
        elapsed = time.monotonic() - self._started
        extra: dict[str, Any] = {
            "accounts_done": done,
            "accounts_total": total,
            "elapsed_s": round(elapsed, 1),
        }
        if done and done < total:
            extra["eta_s"] = round(elapsed / done * (total - done), 0)
        if last is not None:
            extra["last_account"] = last.id
        log.info("scan progress: %d of %d accounts done", done, total, extra=extra)
