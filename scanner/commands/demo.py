"""`vaultscan demo`: the whole product on a sandbox organization, with no AWS account.

Builds the sandbox organization in-process (moto), scans it with the engine standing in
for AWS's policy simulator, stores the verdicts in the embedded PostgreSQL (or
--database-url) and prints what a real scan prints. Findings are the point of the demo,
so it exits 0 when they are found.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

from scanner.commands.scan import EXIT_OK, CommandError, open_database, run_command

if TYPE_CHECKING:
    from rich.console import Console

    from scanner.runner import ScanReport
    from scanner.sandbox import SandboxAccount, SandboxOrg

# SDK settings of the user's shell that would send the sandbox's calls elsewhere.
AWS_ENVIRONMENT_PREFIXES = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")


SANDBOX_SEED = 20261128
MOTO_MISSING = (
    "the demo builds its sandbox organization in moto (an in-memory AWS), which is not "
    "installed: pip install 'vaultscan[demo]' (in a checkout: make demo). Scanning a real "
    "organization (vaultscan scan) does not need it"
)


def require_moto() -> None:
    """moto is an optional extra (vaultscan[demo]): say how to get it when it is missing."""
    try:
        import moto  # noqa: F401  (only whether it is installed matters here)
    except ImportError as exc:
        raise CommandError(MOTO_MISSING) from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="scan a sandbox organization (no AWS account needed) and show the verdicts",
        description=(
            "Creates a sandbox AWS Organization in memory (20 member accounts in nested OUs, "
            "two regions, one planted cause of Access Denied in most accounts), scans it "
            "into PostgreSQL and prints every account's verdict with the fix."
        ),
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="PostgreSQL URL (default: an embedded server under --data-dir)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".vaultscan"),
        metavar="DIR",
        help="where the embedded PostgreSQL keeps its data (default: .vaultscan)",
    )
    change = parser.add_mutually_exclusive_group()
    change.add_argument(
        "--break",
        dest="break_account",
        default=None,
        metavar="ACCOUNT",
        help="before scanning, attach an inline Deny on backup:CreateBackupVault to the "
        "backup role of ACCOUNT (name or id of a healthy sandbox account): the scan "
        "records a regression against the previous demo",
    )
    change.add_argument(
        "--repair",
        dest="repair_account",
        default=None,
        metavar="ACCOUNT",
        help="scan with ACCOUNT healthy again after a --break demo: the scan records the fix",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_command("demo", _demo, args)


@contextmanager
def sandbox_aws_environment() -> Iterator[None]:
    """Fake credentials, no endpoint override or profile: every call stays in-process."""
    from unittest import mock

    from moto import mock_aws

    from scanner.sandbox_aws import one_request_at_a_time

    cleaned = {k: v for k, v in os.environ.items() if not k.startswith(AWS_ENVIRONMENT_PREFIXES)}
    cleaned.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    # the scan's threads all call moto in this process: one request at a time inside it
    with mock.patch.dict(os.environ, cleaned, clear=True), mock_aws(), one_request_at_a_time():
        yield


def _demo(args: argparse.Namespace) -> int:
    import boto3

    from scanner.aws.ratelimit import Throttle
    from scanner.aws.session import AwsSessions
    from scanner.config import DatabaseSettings
    from scanner.render import make_console, scan_progress
    from scanner.runner import run_scan
    from scanner.sandbox import sandbox_settings, seed_sandbox_organization
    from storage.locks import scan_lock

    require_moto()
    started = time.perf_counter()
    console = make_console()
    console.print("[bold]vaultscan demo[/]: a sandbox AWS Organization, scanned end to end")
    database = _database_settings(args)
    with sandbox_aws_environment(), ThreadPoolExecutor(max_workers=1) as background:
        # the embedded server starts (first run: initdb) while the sandbox is seeded
        opening = background.submit(
            open_database,
            SimpleNamespace(database=DatabaseSettings(**database)),
            args.database_url,
        )
        session = boto3.Session(region_name="us-east-1")
        # moto draws account, OU, policy and key ids from one seedable generator: the
        # same ids every run, so a second demo shows no drift instead of 13 new accounts
        from moto.moto_api._internal import mock_random

        mock_random.seed(SANDBOX_SEED)
        with console.status("creating the sandbox organization (moto)…"):
            sandbox = seed_sandbox_organization(session)
        changed = _apply_change(args, session, sandbox)
        url, engine = opening.result()
        settings = sandbox_settings(sandbox, database=database)
        # moto has no Organizations quotas: no client-side rate limit needed
        sessions = AwsSessions(settings, session=session, org_throttle=Throttle())
        with scan_lock(engine) as acquired:
            if not acquired:
                raise CommandError(
                    "another scan is running against this database; wait for it or "
                    "pass --database-url"
                )
            with scan_progress(console) as progress:
                report = run_scan(
                    settings,
                    engine=engine,
                    trigger="demo",
                    sessions=sessions,
                    progress=progress,
                )
    print_demo_report(
        console,
        report,
        sandbox,
        url=url,
        args=args,
        total_seconds=time.perf_counter() - started,
    )
    if changed is not None:
        print_changes(console, engine, report.run_id, changed, args)
    return EXIT_OK


def _apply_change(args: argparse.Namespace, session: object, sandbox: SandboxOrg) -> str | None:
    """--break: break the account in this run's sandbox; --repair: leave it healthy (each
    demo builds a fresh sandbox, so the account is as planted). The account's name."""
    from scanner.sandbox import break_account

    wanted = args.break_account or args.repair_account
    if wanted is None:
        return None
    account = _healthy_account(sandbox, wanted)
    if args.break_account:
        break_account(session, sandbox, account.account_id)  # type: ignore[arg-type]
    return account.name


def _healthy_account(sandbox: SandboxOrg, wanted: str) -> SandboxAccount:
    matches = [a for a in sandbox.accounts if wanted in (a.name, a.account_id)]
    healthy = ", ".join(sorted(a.name for a in sandbox.healthy_accounts))
    if not matches:
        raise CommandError(f"no sandbox account named {wanted!r}; healthy ones: {healthy}")
    account = matches[0]
    if not account.healthy:
        raise CommandError(
            f"{account.name} already fails ({account.expectation.summary}); --break and "
            f"--repair take a healthy account: {healthy}"
        )
    return account


def print_changes(
    console: Console, engine: object, run_id: int, account: str, args: argparse.Namespace
) -> None:
    """What this demo changed: its drift events, the alert they fire, the report section."""
    from storage.repository import drift_events

    events = [
        e
        for e in drift_events(engine, run_id=run_id, kinds=("regressed", "fixed"))  # type: ignore[arg-type]
        if e["account_name"] == account
    ]
    console.print()
    console.print(f"[bold]What changed[/] in scan run #{run_id} ({account}):")
    if not events:
        console.print(
            "  no drift: the previous demo in this database saw the same (run the demo "
            "once without --break first, or --repair after a --break)",
            highlight=False,
        )
        return
    for event in events:
        console.print(
            f"  {event['kind']:<9} {event['check']:<28} {event['region']:<10} "
            f"{event['previous_status']} -> {event['current_status']}",
            highlight=False,
        )
    if any(e["kind"] == "regressed" for e in events):
        console.print(
            '  metric vaultscan_drift_events_total{kind="regressed"} went up: the alert '
            "VaultscanRegressionDetected (critical) fires for the next hour",
            highlight=False,
        )
    option = f" --database-url '{args.database_url}'" if args.database_url else ""
    program = invoked_as()
    console.print(f"  the report's Regressions and Fixes: {program} report --days 1{option}")
    undo = "--repair" if args.break_account else "--break"
    console.print(f"  and back: {program} demo {undo} {account}{option}", highlight=False)


def print_demo_report(
    console: Console,
    report: ScanReport,
    sandbox: SandboxOrg,
    *,
    url: str,
    args: argparse.Namespace,
    total_seconds: float,
) -> None:
    from scanner.commands.scan import database_hint
    from scanner.render import render_fixes, render_totals, report_rows, verdict_table

    rows = report_rows(report)
    console.print(
        f"sandbox: {len(sandbox.accounts)} member accounts in {len(sandbox.ou_ids)} OUs, "
        f"regions {', '.join(sandbox.regions)}, seeded in {sandbox.seed_seconds:.1f} s",
        highlight=False,
    )
    console.print(report.simulator_note, highlight=False)
    console.print()
    console.print(verdict_table(rows))
    console.print()
    console.print("[bold]Planted causes[/] (what the sandbox set up in each account):")
    for account in sorted(sandbox.accounts, key=lambda item: item.name):
        first, *others = account.roles
        console.print(f"  {account.name:<20} {first.expectation.summary}", highlight=False)
        for role in others:
            console.print(f"  {'':<20} {role.name}: {role.expectation.summary}", highlight=False)
    render_fixes(console, rows)
    console.print()
    render_totals(console, rows)
    status = report.totals.status if report.totals else "interrupted"
    console.print(
        f"scan run #{report.run_id} ({status}): scan {report.seconds:.1f} s, "
        f"demo total {total_seconds:.1f} s",
        highlight=False,
    )
    console.print(f"results stored in {database_hint(url)}", highlight=False)
    prefix = ""
    option = ""
    if args.database_url:
        option = f" --database-url '{args.database_url}'"
    elif Path(args.data_dir) != Path(".vaultscan"):
        prefix = f"VAULTSCAN_DATABASE__DATA_DIR={args.data_dir} "
    console.print()
    console.print("[bold]Next, try:[/]")
    program = invoked_as()
    for command in (
        f"{program} results --status fail{option}",
        f"{program} results --status fail --export-scenarios scenarios/{option}",
        f"{program} explain scenarios/",
    ):
        console.print(f"  {prefix if 'results' in command else ''}{command}", highlight=False)


def invoked_as(argv0: str | None = None) -> str:
    """How to run vaultscan again: `vaultscan` when that name on PATH is this program, else
    the path it was started by (`.venv/bin/vaultscan` after `make demo`)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if os.sep not in argv0 or Path(argv0).name != "vaultscan":
        return "vaultscan"
    found = shutil.which("vaultscan")
    if found and Path(found).resolve() == Path(argv0).resolve():
        return "vaultscan"
    return argv0


def _database_settings(args: argparse.Namespace) -> dict[str, object]:
    if args.database_url:
        return {"url": args.database_url}
    return {"data_dir": str(args.data_dir)}
