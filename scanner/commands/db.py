"""`vaultscan db`: create or update the database schema and show which database is used."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "database schema: upgrade, current revision, URL in use, prune old evidence"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "db",
        help=HELP,
        description="Manage vaultscan's PostgreSQL database. Without database.url in the "
        "configuration, an embedded server is started under database.data_dir.",
    )
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, text in (
        ("upgrade", "apply pending migrations (safe to run from several replicas at once)"),
        ("current", "print the schema revision of the database (exit 1 if not the newest)"),
        ("url", "print the database URL in use, password masked"),
        (
            "prune",
            "remove the per-check evidence of runs older than --keep-days, in small "
            "batches; keeps run counts, the latest state, failing-since evidence and drift "
            "totals (safe while a scan runs)",
        ),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument(
            "--database-url",
            default=None,
            metavar="URL",
            help="PostgreSQL URL; overrides database.url from the configuration",
        )
        action.add_argument(
            "--config",
            type=Path,
            default=None,
            metavar="FILE",
            help="configuration file (default: $VAULTSCAN_CONFIG, else ./vaultscan.yaml)",
        )
    prune = actions.choices["prune"]
    prune.add_argument(
        "--keep-days",
        type=_at_least_one,
        required=True,
        metavar="N",
        help="keep the evidence of runs started in the last N days (at least 1)",
    )
    prune.add_argument(
        "--batch-size",
        type=_at_least_one,
        default=None,
        metavar="ROWS",
        help="rows deleted per transaction (default: retention.batch_size, 5000)",
    )
    parser.set_defaults(handler=run)


def _at_least_one(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _settings(args: argparse.Namespace) -> Any:
    from scanner.config import load_settings

    return load_settings(args.config)


def _database_url(args: argparse.Namespace) -> str:
    from storage.db import normalise_url, resolve_database_url

    if args.database_url:
        return normalise_url(args.database_url)
    return resolve_database_url(_settings(args))


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import DBAPIError, OperationalError

    from scanner.config import ConfigError
    from storage.db import DatabaseConfigError, mask_url
    from storage.embedded import EmbeddedPostgresError
    from storage.migrate import MigrationsNotFoundError

    url: str | None = None
    try:
        url = _database_url(args)
        if args.db_command == "prune":
            return _prune(url, args)
        return _ACTIONS[args.db_command](url)
    except ConfigError as exc:
        print(f"vaultscan db: {exc.message}", file=sys.stderr)
    except (DatabaseConfigError, EmbeddedPostgresError, MigrationsNotFoundError) as exc:
        print(f"vaultscan db: {exc}", file=sys.stderr)
    except DBAPIError as exc:  # refused, authentication, missing rights: say where and why
        target = mask_url(url) if url else "the database"
        detail = str(exc.orig).strip() if exc.orig is not None else str(exc)
        what = "cannot reach" if isinstance(exc, OperationalError) else "database error at"
        print(f"vaultscan db: {what} {target}: {detail}", file=sys.stderr)
    return 2


def _upgrade(url: str) -> int:
    from storage.db import mask_url
    from storage.migrate import current, upgrade

    before = current(url)
    upgrade(url)
    after = current(url)
    if before == after:
        print(f"{mask_url(url)}: schema already at revision {after}, nothing to do")
    else:
        print(f"{mask_url(url)}: schema upgraded from {before or 'empty'} to revision {after}")
    return 0


def _current(url: str) -> int:
    from storage.migrate import current, head_revision

    revision, head = current(url), head_revision()
    if revision is None:
        print(f"no schema (newest is {head}); run `vaultscan db upgrade`")
        return 1
    if revision != head:
        print(f"{revision} (newest is {head}); run `vaultscan db upgrade`")
        return 1
    print(f"{revision} (newest)")
    return 0


def _url(url: str) -> int:
    from storage.db import mask_url

    print(mask_url(url))
    return 0


def _prune(url: str, args: argparse.Namespace) -> int:
    from storage.db import make_engine, mask_url
    from storage.migrate import upgrade
    from storage.retention import prune

    batch_size = args.batch_size or _settings(args).retention.batch_size
    upgrade(url)  # the retention columns and totals must exist
    result = prune(make_engine(url), keep_days=args.keep_days, batch_size=batch_size)
    print(
        f"{mask_url(url)}: removed the evidence of {result.runs} run(s) started before "
        f"{result.cutoff:%Y-%m-%d %H:%M} UTC: {result.check_results} check results, "
        f"{result.account_scans} account reads, {result.drift_events} drift events, in "
        f"{result.batches} batch(es), {result.seconds:.1f} s"
    )
    return 0


_ACTIONS = {"upgrade": _upgrade, "current": _current, "url": _url}
