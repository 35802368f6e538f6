"""One output convention for every command: `--format json|csv|table|md|html`, each command
accepting the formats that fit what it prints, with `--json` kept as an alias of
`--format json`. `markdown` is accepted as the long name of `md`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

FORMATS = ("json", "csv", "table", "md", "html")
ALIASES = {"markdown": "md"}
FORMAT_HELP = {
    "json": "JSON",
    "csv": "CSV with the stable columns of docs/integrations.md",
    "table": "a table for the terminal",
    "md": "Markdown",
    "html": "a standalone HTML page",
}


def _normalise(value: str) -> str:
    lowered = value.strip().lower()
    return ALIASES.get(lowered, lowered)


def add_format_arguments(
    parser: argparse.ArgumentParser, choices: Sequence[str], default: str
) -> None:
    """--format (one of `choices`, in FORMATS order) and --json; both set `args.format`."""
    unknown = [name for name in choices if name not in FORMATS]
    if unknown or default not in choices:
        raise ValueError(f"formats {unknown or default!r} are not part of the convention")
    listed = ", ".join(f"{name} ({FORMAT_HELP[name]})" for name in choices)
    parser.add_argument(
        "--format",
        dest="format",
        type=_normalise,
        choices=tuple(choices),
        default=default,
        metavar="|".join(choices),
        help=f"output format: {listed}; default: {default}",
    )
    if "json" in choices:
        parser.add_argument(
            "--json",
            dest="format",
            action="store_const",
            const="json",
            help="same as --format json",
        )
