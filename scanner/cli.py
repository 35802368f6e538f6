"""The `vaultscan` command: one entry point, one module per subcommand under
scanner/commands/. Each module exposes `register(subparsers)` which adds its parser and
sets `handler`, a function taking the parsed arguments and returning the exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Order is the order `vaultscan --help` lists them in.
COMMAND_MODULES = ("demo", "scan", "results", "explain", "report", "serve", "db", "iam_policy")

DESCRIPTION = """\
Checks, across every account of an AWS Organization, that the designated backup roles
can create and use AWS Backup vaults; for every failure it names the policy layer,
policy and statement that deny, and the minimal change that fixes it."""

EPILOG = """\
Start with `vaultscan demo`: it scans a sandbox organization with no AWS account.
Exit status: 0 success, 1 non-compliant or disagreeing answer, 2 bad input or error."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vaultscan",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"scanner.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
