"""`vaultscan scan`: scan the organization once, store the verdicts, print a summary."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from scanner.config import Settings

EXIT_OK, EXIT_NONCOMPLIANT, EXIT_ERROR = 0, 1, 2


class CommandError(Exception):
    """A problem the user can fix (configuration, database, permissions); exit status 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scan",
        help="scan every account once and store the verdicts",
        description=(
            "Discovers the organization's accounts, assumes the read role in each, decides "
            "for every designated role whether it can create a backup vault, stores the "
            "verdicts in PostgreSQL and prints a summary with the fix for every failure. "
            "Exit status: 0 done, 1 a check failed (with --fail-on-noncompliant), "
            "2 configuration, database or organization error."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--publish",
        action="store_true",
        help="then send the findings to the outlets the configuration enables (Security Hub, "
        "OCSF, notifications: docs/integrations.md), as serve does after each scan",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="decide every account afresh, even with `incremental.enabled` (an incremental "
        "scan keeps the verdicts of accounts whose evidence is unchanged: "
        "docs/configuration.md)",
    )
    parser.add_argument(
        "--fail-on-noncompliant",
        action="store_true",
        help="exit 1 when any check fails (for CI pipelines)",
    )
    from scanner.commands.output import add_format_arguments

    add_format_arguments(parser, ("json", "csv", "table"), "table")
    parser.set_defaults(handler=run)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="configuration file (default: $VAULTSCAN_CONFIG, else ./vaultscan.yaml)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="PostgreSQL URL; overrides database.url from the configuration",
    )


def load_config(args: argparse.Namespace) -> Settings:
    from scanner.config import ConfigError, load_settings

    try:
        return load_settings(args.config)
    except ConfigError as exc:
        raise CommandError(exc.message) from None


def open_database(settings: Settings, database_url: str | None) -> tuple[str, Engine]:
    """The database URL (argument, settings, or the embedded server), migrated to the
    newest schema (idempotent), and its engine."""
    from storage.db import (
        DatabaseConfigError,
        describe_error,
        make_engine,
        mask_url,
        normalise_url,
        resolve_database_url,
    )
    from storage.embedded import EmbeddedPostgresError
    from storage.migrate import upgrade

    url: str | None = None
    try:
        url = normalise_url(database_url) if database_url else resolve_database_url(settings)
        upgrade(url)
    except (DatabaseConfigError, EmbeddedPostgresError) as exc:
        raise CommandError(str(exc)) from None
    except Exception as exc:  # psycopg/sqlalchemy connection errors
        target = mask_url(url) if url else "the configured database"
        raise CommandError(f"cannot use {target}: {describe_error(exc)}") from None
    return url, make_engine(url)


def open_configured_database(args: argparse.Namespace) -> tuple[Settings, str, Engine]:
    """The configuration (--config) and the database to use (--database-url, else the
    configured one), opened as open_database does."""
    settings = load_config(args)
    url, engine = open_database(settings, args.database_url)
    return settings, url, engine


def run_command(
    name: str, command: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Run `command`; a CommandError is printed as `vaultscan NAME: ...`, exit status 2."""
    try:
        return command(args)
    except CommandError as exc:
        print(f"vaultscan {name}: {exc}", file=sys.stderr)
        return EXIT_ERROR


def database_hint(url: str) -> str:
    from storage.db import mask_url

    return mask_url(url)


def run(args: argparse.Namespace) -> int:
    return run_command("scan", _scan, args)


def _scan(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from scanner.aws.organizations import DiscoveryError
    from scanner.aws.session import AccountAccessError
    from scanner.profiles import ProfileError
    from scanner.render import (
        make_console,
        render_fixes,
        render_totals,
        report_rows,
        scan_progress,
        verdict_table,
    )
    from scanner.runner import run_scan
    from scanner.service import recover_abandoned_runs
    from scanner.signals import sigterm_interrupts
    from storage.locks import scan_lock

    settings, url, engine = open_configured_database(args)
    console = make_console(stderr=args.format in ("json", "csv"))
    with scan_lock(engine) as acquired:
        if not acquired:
            raise CommandError(
                "another scan is running against this database (a `vaultscan serve` replica "
                "or another `vaultscan scan`); wait for it to finish"
            )
        # holding the lock proves nobody scans: a run still "running" was abandoned by a
        # dead process (kill -9, OOM) and is closed as interrupted, as serve does
        recover_abandoned_runs(engine, lock_held=True)
        try:
            with sigterm_interrupts(), scan_progress(console) as progress:
                report = run_scan(
                    settings, engine=engine, trigger="cli", progress=progress, full=args.full
                )
        except (DiscoveryError, ProfileError, AccountAccessError) as exc:
            raise CommandError(str(exc)) from None
        except SQLAlchemyError as exc:
            raise CommandError(
                f"database error during the scan: {str(exc).strip().splitlines()[0]}"
            ) from None
        if args.publish:
            _publish(settings, engine, report, console)
    rows = report_rows(report)
    if args.format == "json":
        print(json.dumps(report_json(report, rows), indent=2, default=str))
    elif args.format == "csv":
        from exporters.csv_export import results_csv

        sys.stdout.write(results_csv(rows))
    else:
        console.print(report.simulator_note, highlight=False)
        if settings.incremental.enabled and not args.full:
            console.print(unchanged_note(report), highlight=False)
        console.print(verdict_table(rows))
        render_fixes(console, rows)
        console.print()
        render_totals(console, rows)
        console.print(
            f"run #{report.run_id} ({report.totals.status if report.totals else 'interrupted'})"
            f" in {report.seconds:.1f} s, stored in {database_hint(url)}",
            highlight=False,
        )
    if args.fail_on_noncompliant and report.failed_checks:
        return EXIT_NONCOMPLIANT
    return EXIT_OK


def unchanged_note(report: Any) -> str:
    """What an incremental scan skipped."""
    accounts = len(report.summary.outcomes)
    return (
        f"incremental scan: {report.unchanged_accounts} of {accounts} accounts unchanged since "
        "their last read, their verdicts carried over (--full decides every account afresh)"
    )


def _publish(settings: Any, engine: Engine, report: Any, console: Any) -> None:
    """--publish: the outlets' post-scan step, reported on the console (stderr for JSON
    and CSV); a failed delivery is logged and shown, never the scan's exit status."""
    from scanner.outlets import any_outlet_enabled, publish_run
    from scanner.vocabulary import COMPLETE_RUN_STATUSES

    status = report.totals.status if report.totals else None
    if not any_outlet_enabled(settings):
        console.print("--publish: no outlet is enabled in the configuration", highlight=False)
        return
    if status not in COMPLETE_RUN_STATUSES:
        console.print(f"--publish: nothing published, the run is {status}", highlight=False)
        return
    for name, ok in publish_run(settings, engine, report.run_id).items():
        console.print(f"{name}: {'delivered' if ok else 'FAILED (see the log)'}", highlight=False)


def report_json(report: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    totals = report.totals
    return {
        "run_id": report.run_id,
        "status": totals.status if totals else "interrupted",
        "simulator": report.simulator_name,
        "seconds": round(report.seconds, 3),
        "unchanged_accounts": report.unchanged_accounts,
        "totals": None if totals is None else _totals_json(totals),
        "results": rows,
    }


def _totals_json(totals: Any) -> dict[str, Any]:
    return {
        "accounts_total": totals.accounts_total,
        "accounts_scanned": totals.accounts_scanned,
        "accounts_errored": totals.accounts_errored,
        "checks_total": totals.checks_total,
        "checks_passed": totals.checks_passed,
        "checks_failed": totals.checks_failed,
        "checks_errored": totals.checks_errored,
        "disagreements": totals.disagreements,
        "drift": totals.drift,
    }
