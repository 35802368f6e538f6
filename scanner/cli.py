"""The `vaultscan` command: one entry point, one module per subcommand under
scanner/commands/. Each module exposes `register(subparsers)` which adds its parser and
sets `handler`, a function taking the parsed arguments and returning the exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from scanner.commands.conventions import apply_conventions
from scanner.redact import RedactingFormatter, quiet_chatty_loggers

# Order is the order `vaultscan --help` lists them in.
COMMAND_MODULES = (
    "demo",
    "scan",
    "results",
    "explain",
    "report",
    "serve",
    "export",
    "db",
    "iam_policy",
)

DESCRIPTION = """\
Checks, across every account of an AWS Organization, that the designated backup roles
can create and use AWS Backup vaults; for every failure it names the policy layer,
policy and statement that deny, and the minimal change that fixes it."""

EPILOG = """\
Start with `vaultscan demo`: it scans a sandbox organization with no AWS account.
Exit status: 0 success, 1 non-compliant or disagreeing answer, 2 bad input or error."""

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of the output went away


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# attributes every LogRecord has; anything else on a record came from `extra={...}`
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class LogFormatter(RedactingFormatter):
    """LOG_FORMAT followed by the call's `extra` fields as key=value, so
    `log.warning("account not collected", extra={"account": ...})` names the account."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        text = super().formatMessage(record)
        fields = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
        ]
        return " ".join([text, *fields])


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="configuration file, for the commands that read one (also after the command)",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="PostgreSQL URL, for the commands that use one (also after the command)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"scanner.commands.{name}").register(subparsers)
    apply_conventions(parser)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vaultscan")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    quiet_chatty_loggers(level)
    try:
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe surfaces here, where it can still be handled
        return status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `vaultscan results --json | head`: the reader has what it wanted; stop quietly
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
