"""`vaultscan explain FILE|DIR...`: answer authorization scenarios offline and say why."""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_DISAGREES, EXIT_UNREADABLE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="answer authorization scenarios and explain which policy statements decide",
        description=(
            "Reads authorization scenarios (a JSON file with one scenario, a file with a "
            "JSON array of them, or a folder of *.json files) and prints, for each, the "
            "decision and, per policy layer, the statements that decided it. Exit status: "
            "0 all answered, 1 an answer disagrees with the scenario's `expected`, "
            "2 a scenario could not be read."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="FILE|DIR", help="scenario files or folders")
    from scanner.commands.output import add_format_arguments

    # json: a JSON array of answers
    add_format_arguments(parser, ("json", "table"), "table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `vaultscan --help` stays cheap.
    from scanner.policy import ScenarioError, load_scenarios
    from scanner.policy.explain import answer, error_to_dict, render_answer, render_error

    results = [answer(item) for item in load_scenarios(args.paths)]
    unreadable = any(isinstance(result, ScenarioError) for result in results)
    disagrees = any(
        not isinstance(result, ScenarioError) and result.agrees is False for result in results
    )
    for result in results:
        if isinstance(result, ScenarioError):
            print(render_error(result), file=sys.stderr)
    if args.format == "json":
        payload = [
            error_to_dict(result) if isinstance(result, ScenarioError) else result.to_dict()
            for result in results
        ]
        print(json.dumps(payload, indent=2))
    else:
        blocks = [render_answer(r) for r in results if not isinstance(r, ScenarioError)]
        if blocks:  # nothing answered: the errors on stderr say it all
            print("\n\n".join(blocks))
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_DISAGREES if disagrees else EXIT_OK
