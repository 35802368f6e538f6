"""The CLI's shared conventions: --version, global options before or after the command,
one --format flag with --json as its alias, and an example in every command's --help."""

from __future__ import annotations

import pytest

from scanner import cli
from scanner.commands.conventions import EXAMPLES, subcommand_parsers


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("vaultscan ")


def test_every_command_help_has_an_example():
    parsers = subcommand_parsers(cli.build_parser())
    assert {path for path, _ in parsers} >= {"scan", "results", "report", "db upgrade"}
    for path, parser in parsers:
        text = parser.format_help()
        assert "example" in text, path
        assert f"  {EXAMPLES[path][0]}" in text, path


def test_examples_parse():
    """Every example is a valid command line."""
    parser = cli.build_parser()
    for path, lines in EXAMPLES.items():
        if path.split()[0] not in {p for p, _ in subcommand_parsers(parser)}:
            continue  # a command this build does not have
        for line in lines:
            words = line.split(">")[0].split()[1:]
            parser.parse_args(words)


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "--config", "x.yaml", "results"],
        ["results", "-v", "--config", "x.yaml"],
        ["-v", "results", "--config", "x.yaml"],
    ],
)
def test_global_options_before_or_after(argv):
    args = cli.build_parser().parse_args(argv)
    assert args.verbose == 1 and str(args.config) == "x.yaml"


def test_an_option_after_the_command_wins():
    args = cli.build_parser().parse_args(["--config", "a.yaml", "results", "--config", "b.yaml"])
    assert str(args.config) == "b.yaml"


def test_format_convention():
    parser = cli.build_parser()
    assert parser.parse_args(["results", "--json"]).format == "json"
    assert parser.parse_args(["results", "--format", "csv"]).format == "csv"
    assert parser.parse_args(["results"]).format == "table"
    assert parser.parse_args(["report", "--format", "markdown"]).format == "md"
    assert parser.parse_args(["explain", "x.json", "--json"]).format == "json"
    assert parser.parse_args(["iam-policy", "--format", "yaml", "--json"]).fmt == "json"
    with pytest.raises(SystemExit):
        parser.parse_args(["results", "--format", "html"])
