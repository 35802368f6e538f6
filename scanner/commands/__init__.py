"""One module per CLI command, each with `register(subparsers)` and its handler.

The CLI imports every command module to build its parser, so a module imports at its top
only what parsing needs (argparse, the standard library). What a command runs (boto3,
SQLAlchemy, the engine, rich) is imported inside its handler: `vaultscan --help` and a
mistyped option answer without loading them. These imports avoid start-up cost only;
none of them hides an import cycle (import-linter's contracts in pyproject.toml check
that with the function-level imports counted).
"""
