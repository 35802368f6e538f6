"""`vaultscan report`: the weekly report (Markdown, standalone HTML or JSON) from the
database: compliance now and at the start of the period, regressions and fixes, what fails
by cause with its fix, unreachable accounts, simulator disagreements and scan health."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scanner.commands.output import add_format_arguments
from scanner.commands.scan import (
    EXIT_OK,
    CommandError,
    add_config_arguments,
    open_configured_database,
    run_command,
)

FORMATS = ("json", "csv", "md", "html")
# --format names the renderers of exporters.report.RENDERERS
RENDERER_NAMES = {"md": "markdown"}
MAX_DAYS = 3660


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the weekly compliance report",
        description=(
            "Reports on the N days ending at the latest finished scan: compliance now and "
            "at the start of the period, regressions and fixes, the checks failing now "
            "grouped by cause with their fix, accounts that could not be read, simulator "
            "disagreements and scan health. Prints Markdown unless --format says otherwise "
            "(csv: one row per listed item, see docs/integrations.md). "
            "Exit status: 0 written, 2 no finished scan yet or a configuration, database "
            "or file error."
        ),
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--days",
        type=_positive_days,
        default=None,
        metavar="N",
        help="length of the period in days (default: report.days, 7)",
    )
    parser.add_argument(
        "--deliver",
        action="store_true",
        help="render report.formats and deliver them to report.delivery (a directory, "
        "S3, e-mail over SMTP) from the configuration, instead of printing",
    )
    add_format_arguments(parser, FORMATS, "md")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the report to FILE instead of standard output",
    )
    parser.set_defaults(handler=run)


def _positive_days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"the period must be 1 to {MAX_DAYS} days, not {days}")
    return days


def run(args: argparse.Namespace) -> int:
    return run_command("report", _report, args)


def _report(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from exporters.report import RENDERERS, NoFinishedScan, build_report

    settings, _url, engine = open_configured_database(args)
    days = args.days or settings.report.days
    try:
        report = build_report(engine, days=days, owner_tag=settings.report.owner_tag)
    except NoFinishedScan:
        raise CommandError(
            "no finished scan in the database yet, so there is nothing to report: run "
            "`vaultscan scan` (or `vaultscan demo`) first, or check --database-url"
        ) from None
    except SQLAlchemyError as exc:
        raise CommandError(
            f"database error while reading the report: {str(exc).strip().splitlines()[0]}"
        ) from None
    if args.deliver:
        return _deliver(report, settings)
    document = RENDERERS[RENDERER_NAMES.get(args.format, args.format)](report)
    if args.output is None:
        sys.stdout.write(document)
        return EXIT_OK
    try:
        args.output.write_text(document, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"wrote the {args.format} report to {args.output}", file=sys.stderr)
    return EXIT_OK


def _deliver(report: object, settings: object) -> int:
    from exporters.report.delivery import DeliveryError, deliver_or_raise
    from scanner.outlets import report_s3_client

    try:
        s3 = report_s3_client(settings)  # type: ignore[arg-type]
        delivered = deliver_or_raise(report, settings.report, s3_client=s3)  # type: ignore[arg-type, attr-defined]
    except DeliveryError as exc:
        raise CommandError(f"report delivery failed: {exc}") from None
    for where in delivered:
        print(f"delivered {where}", file=sys.stderr)
    return EXIT_OK
