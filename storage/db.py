"""Which database to use and how to connect to it.

`resolve_database_url` turns settings into a SQLAlchemy URL (configured server, or the
embedded one); `make_engine` gives one shared, pooled Engine per URL. Nothing here
connects at import time.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine

from scanner.redact import mask_secrets
from storage.embedded import start_embedded
from storage.urls import DRIVER, DatabaseConfigError, mask_url, normalise_url

# what callers import from here: the URL helpers belong to storage.urls
__all__ = [
    "DRIVER",
    "DatabaseConfigError",
    "describe_error",
    "dumps_json",
    "make_engine",
    "mask_url",
    "normalise_url",
    "resolve_database_url",
]

# The scan runner records from up to ~8 worker threads at once; keep a little headroom
# for the metrics endpoint and the scan lock's long-held connection.
POOL_SIZE = 10
MAX_OVERFLOW = 5

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def describe_error(exc: BaseException) -> str:
    """What the database (driver) said, without SQLAlchemy's wrapper, SQL text or
    "Background on this error" link: `connection failed: ... Connection refused`."""
    original = getattr(exc, "orig", None)
    text = mask_secrets(str(original if original is not None else exc)).strip()
    if not text:
        return type(exc).__name__
    if original is None:
        return text.splitlines()[0]
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


class DatabaseSection(Protocol):
    """The settings' `database` section (scanner.config.DatabaseSettings), as read here:
    storage does not import the scanner's settings."""

    @property
    def url(self) -> str | None: ...

    @property
    def data_dir(self) -> Path | str: ...


class WithDatabase(Protocol):
    @property
    def database(self) -> DatabaseSection: ...


def resolve_database_url(settings: WithDatabase) -> str:
    """`settings.database.url` when set, else the embedded server in
    `settings.database.data_dir` (started if it is not running)."""
    database = settings.database
    if database.url:
        return normalise_url(str(database.url))
    return start_embedded(Path(database.data_dir))


def _json_default(value: Any) -> Any:
    # Evidence comes from AWS documents and the engine: dates and sets are the only
    # non-JSON types seen there; anything else is stored as its text rather than failing.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def dumps_json(value: Any) -> str:
    return json.dumps(value, default=_json_default)


def make_engine(url: str) -> Engine:
    """The shared Engine for `url` (psycopg 3, pre-ping, sized for the scan's writers)."""
    key = normalise_url(url)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_engine(
                key,
                pool_pre_ping=True,  # survive database restarts between scheduled scans
                pool_size=POOL_SIZE,
                max_overflow=MAX_OVERFLOW,
                pool_recycle=1800,
                json_serializer=dumps_json,
            )
            _engines[key] = engine
        return engine
