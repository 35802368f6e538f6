"""What every command's --help shares: an example (or a few) at the end, and a formatter
that wraps prose but keeps indented example lines as written."""

from __future__ import annotations

import argparse
import re
import textwrap

# command path (as typed after `vaultscan`) -> example lines, most common use first
EXAMPLES: dict[str, tuple[str, ...]] = {
    "demo": ("vaultscan demo", "vaultscan demo --database-url postgresql://localhost/vaultscan"),
    "scan": (
        "vaultscan scan --config vaultscan.yaml",
        "vaultscan scan --fail-on-noncompliant --format csv > verdicts.csv",
        "vaultscan scan --publish",
    ),
    "results": (
        "vaultscan results --status fail",
        "vaultscan results --account 111122223333 --format csv > results.csv",
        "vaultscan results --status fail --export-scenarios scenarios/",
    ),
    "explain": ("vaultscan explain scenarios/", "vaultscan explain scenario.json --format json"),
    "report": (
        "vaultscan report --days 7 --format html --output report.html",
        "vaultscan report --format csv > report.csv",
        "vaultscan report --deliver --config vaultscan.yaml",
    ),
    "serve": ("vaultscan serve --config vaultscan.yaml", "vaultscan serve --metrics-only"),
    "export": (
        "vaultscan export securityhub --dry-run > findings.json",
        "vaultscan export ocsf --output findings.ocsf.jsonl",
    ),
    "export securityhub": (
        "vaultscan export securityhub --region eu-west-1",
        "vaultscan export securityhub --dry-run > findings.json",
    ),
    "export ocsf": (
        "vaultscan export ocsf --output findings.ocsf.jsonl",
        "vaultscan export ocsf --s3-uri s3://security-lake-bucket/vaultscan/",
    ),
    "db": ("vaultscan db upgrade", "vaultscan db current"),
    "db upgrade": ("vaultscan db upgrade --database-url postgresql://localhost/vaultscan",),
    "db current": ("vaultscan db current",),
    "db url": ("vaultscan db url --config vaultscan.yaml",),
    "db prune": (
        "vaultscan db prune --keep-days 90",
        "vaultscan db prune --keep-days 30 --batch-size 1000 --config vaultscan.yaml",
    ),
    "iam-policy": (
        "vaultscan iam-policy --role member",
        "vaultscan iam-policy --role scanner --config vaultscan.yaml --format yaml",
    ),
}

_INDENTED = re.compile(r"^\s")


class HelpFormatter(argparse.HelpFormatter):
    """Wraps each paragraph of prose; paragraphs with indented lines stay as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = re.split(r"\n\s*\n", text.strip("\n"))
        out = []
        for paragraph in paragraphs:
            lines = paragraph.splitlines()
            if any(_INDENTED.match(line) for line in lines[1:]):
                out.append("\n".join(indent + line for line in lines))
            else:
                joined = " ".join(line.strip() for line in lines)
                out.append(
                    textwrap.fill(joined, width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n\n".join(out)


def examples_epilog(path: str, epilog: str | None) -> str | None:
    """The epilog with the command's examples appended. A command without examples keeps
    its epilog (tests/test_cli_conventions.py fails for it; the CLI itself still works)."""
    lines = EXAMPLES.get(path)
    if not lines:
        return epilog
    block = "example:\n" if len(lines) == 1 else "examples:\n"
    block += "\n".join(f"  {line}" for line in lines)
    return f"{epilog.rstrip()}\n\n{block}" if epilog else block


# Options every command takes before or after its name (`vaultscan -v scan` and
# `vaultscan scan -v`); --config and --database-url where the command has them.
GLOBAL_DESTS = ("verbose", "config", "database_url")


def subcommand_parsers(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (command path, parser) below `parser`, nested ones (`db upgrade`) included."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                found.append((path, sub))
                found.extend(subcommand_parsers(sub, path))
    return found


def apply_conventions(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand its examples, the shared formatter and the global options.

    argparse copies a subcommand's defaults over what the main parser parsed, so the
    subcommand's copies of the global options default to SUPPRESS: a value given before
    the command name survives, one given after it wins."""
    for path, sub in subcommand_parsers(parser):
        sub.epilog = examples_epilog(path, sub.epilog)
        sub.formatter_class = HelpFormatter
        dests = {action.dest: action for action in sub._actions}
        if "verbose" not in dests:
            sub.add_argument(
                "-v",
                "--verbose",
                action="count",
                default=argparse.SUPPRESS,
                help="more logging (-vv: debug)",
            )
        for dest in GLOBAL_DESTS:
            if dest in dests:
                dests[dest].default = argparse.SUPPRESS
