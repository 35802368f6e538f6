"""`vaultscan results`: the latest verdict of every check, from the database."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from scanner.commands.output import add_format_arguments
from scanner.commands.scan import (
    EXIT_OK,
    CommandError,
    add_config_arguments,
    open_configured_database,
    run_command,
)
from scanner.vocabulary import CheckStatus, RunStatus

UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "results",
        help="show the latest verdicts stored in the database",
        description=(
            "Prints the latest verdict of every check (account, region, role, action) with "
            "the layer, policy and statement that decided a failure and the fix. "
            "--export-scenarios writes each verdict's authorization scenario as JSON so "
            "`vaultscan explain DIR` can replay it offline."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument("--account", metavar="ID", help="only this account id")
    parser.add_argument("--region", metavar="REGION", help="only this region")
    parser.add_argument("--role", metavar="NAME", help="only this role (name or ARN)")
    parser.add_argument(
        "--status", choices=[status.value for status in CheckStatus], help="only this status"
    )
    add_format_arguments(parser, ("json", "csv", "table"), "table")
    parser.add_argument(
        "--export-scenarios",
        type=Path,
        metavar="DIR",
        help="write the scenario of every selected verdict to DIR/*.json",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_command("results", _results, args)


def _results(args: argparse.Namespace) -> int:
    from scanner.render import make_console, render_fixes, render_totals, results_table
    from storage.repository import latest_results, latest_run

    _settings, _url, engine = open_configured_database(args)
    rows = latest_results(
        engine, account_id=args.account, region=args.region, status=args.status, role=args.role
    )
    latest = latest_run(engine)
    machine = args.format in ("json", "csv")
    console = make_console(stderr=machine)
    if args.export_scenarios is not None:
        try:
            written = export_scenarios(rows, args.export_scenarios)
        except OSError as exc:
            raise CommandError(
                f"cannot write scenarios to {args.export_scenarios}: {exc.strerror or exc}"
            ) from None
        without = len(rows) - written
        note = (
            f" ({without} verdict(s) without a scenario: key-state and account checks ask "
            "no authorization question)"
            if without
            else ""
        )
        replay = (
            f"; replay them with `vaultscan explain {args.export_scenarios}`" if written else ""
        )
        console.print(
            f"wrote {written} scenario(s) to {args.export_scenarios}/{replay}{note}",
            highlight=False,
        )
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    if args.format == "csv":
        from exporters.csv_export import results_csv

        sys.stdout.write(results_csv(rows))
        return EXIT_OK
    if latest is None:
        console.print("No scan results yet: run `vaultscan scan` (or `vaultscan demo`).")
        return EXIT_OK
    if args.export_scenarios is not None:
        return EXIT_OK
    if not rows:
        if latest.status == RunStatus.FAILED:
            console.print(
                f"No verdicts: the latest scan (run #{latest.id}) failed: {latest.error}",
                highlight=False,
            )
        else:
            console.print("No verdict matches these filters.")
        return EXIT_OK
    console.print(results_table(rows))
    render_fixes(console, rows)
    console.print()
    render_totals(console, rows)
    console.print(
        f"latest scan: run #{latest.id} ({latest.status}), "
        f"started {latest.started_at:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )
    return EXIT_OK


def export_scenarios(rows: list[dict[str, Any]], directory: Path) -> int:
    """One JSON file per verdict that has a scenario; returns how many were written."""
    from scanner.policy.arn import role_name

    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for row in rows:
        scenario = (row.get("evidence") or {}).get("scenario")
        if not scenario:
            continue  # key-state and account-level checks have no authorization question
        role = role_name(row.get("role_arn") or "")
        stem = "-".join([row["account_id"], row["region"], role, row["check"]])
        path = directory / f"{UNSAFE_FILE_CHARS.sub('_', stem)}.json"
        path.write_text(json.dumps(scenario, indent=2, default=str) + "\n", encoding="utf-8")
        written += 1
    return written
