"""`vaultscan iam-policy`: print the IAM policy a vaultscan role needs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROLE_HELP = (
    "member: the read role in every member account; org: the Organizations reader in the "
    "management (or delegated administrator) account; scanner: the scanner's own role "
    "(IRSA), which assumes the other two (default: member)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "iam-policy",
        help="print the IAM policy a vaultscan role needs",
        description="Print the IAM policy document a vaultscan role needs, built from the "
        "exact list of AWS actions the scanner calls. The scanner policy names the member "
        "read role and organization role from the configuration.",
    )
    parser.add_argument(
        "--role", choices=("member", "org", "scanner"), default="member", help=ROLE_HELP
    )
    parser.add_argument(
        "--format",
        choices=("json", "yaml"),
        default="json",
        dest="fmt",
        help="output format (default: json)",
    )
    parser.add_argument(
        "--json", dest="fmt", action="store_const", const="json", help="same as --format json"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="configuration file (default: $VAULTSCAN_CONFIG, else ./vaultscan.yaml)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # imported here so `vaultscan --help` never pays for (or breaks on) the AWS modules
    from scanner.config import ConfigError, load_settings
    from scanner.iam_policy import policy_for, render

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"vaultscan iam-policy: {exc.message}", file=sys.stderr)
        return 2
    sys.stdout.write(render(policy_for(args.role, settings), args.fmt))
    return 0
