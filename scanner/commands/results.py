"""Placeholder: replaced by the module that implements `vaultscan results`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("results", help="(not implemented yet)")
    parser.set_defaults(handler=lambda args: parser.error("not implemented yet"))
