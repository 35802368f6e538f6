"""Database URLs: the one driver vaultscan uses, and how a configured URL is checked and
shown without its password. Shared by storage.db and storage.embedded."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from scanner.redact import mask_secrets

DRIVER = "postgresql+psycopg"


class DatabaseConfigError(ValueError):
    """The configured database URL cannot be used; the message says what to change."""


def normalise_url(url: str) -> str:
    """Return `url` with the psycopg 3 driver: `postgresql://`, `postgres://` and
    `postgresql+psycopg://` are accepted; any other scheme is an error."""
    text = url.strip()
    try:
        parsed = make_url(text)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise DatabaseConfigError(
            f"database.url {mask_url(text)!r} is not a valid URL; expected "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from exc
    if parsed.drivername in ("postgresql", "postgres", DRIVER):
        return parsed.set(drivername=DRIVER).render_as_string(hide_password=False)
    raise DatabaseConfigError(
        f"database.url uses {parsed.drivername!r}; vaultscan needs PostgreSQL: "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    )


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, safe to print and log: in the userinfo
    and in a `?password=` (or `sslpassword`) query parameter alike."""
    try:
        return mask_secrets(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return "<unparseable database URL>"
