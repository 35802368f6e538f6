"""Placeholder: replaced by the module that implements `vaultscan report`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="(not implemented yet)")
    parser.set_defaults(handler=lambda args: parser.error("not implemented yet"))
