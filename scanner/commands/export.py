"""`vaultscan export securityhub|ocsf`: send the latest findings to AWS Security Hub, or
write them as OCSF events, once, from the database (`serve` does the same after every
scan when the outlet is enabled in the configuration)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from scanner.commands.scan import (
    EXIT_OK,
    CommandError,
    add_config_arguments,
    open_configured_database,
    run_command,
)

DESCRIPTION = (
    "Exports the latest verdicts stored in the database. securityhub: one AWS Security Hub "
    "finding per failing check, updated while it fails and archived once it passes "
    "(docs/integrations.md). ocsf: OCSF Compliance Finding events as JSON lines. "
    "Exit status: 0 exported, 2 no finished scan yet, or a configuration, database or AWS error."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export findings to AWS Security Hub or as OCSF events",
        description=DESCRIPTION,
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    hub = targets.add_parser(
        "securityhub",
        help="import, update and resolve findings in AWS Security Hub",
        description="Brings AWS Security Hub (in the scanner's own account) in line with "
        "the latest verdicts: failing checks imported or updated, fixed ones archived.",
    )
    add_config_arguments(hub)
    hub.add_argument("--region", help="Security Hub region (default: securityhub.region)")
    hub.add_argument(
        "--dry-run",
        action="store_true",
        help="print the findings of failing checks as JSON instead of importing them",
    )
    hub.add_argument(
        "--account-id",
        metavar="ID",
        help="with --dry-run: the account the findings would belong to (default: asked of STS)",
    )
    hub.set_defaults(handler=run)
    ocsf = targets.add_parser(
        "ocsf",
        help="write OCSF Compliance Finding events (JSON lines)",
        description="Writes one OCSF Compliance Finding event per failing check, and one "
        "per check the latest scan fixed, as JSON lines, validated against the OCSF schema.",
    )
    add_config_arguments(ocsf)
    ocsf.add_argument(
        "--output", type=Path, metavar="FILE", help="append to FILE (default: standard output)"
    )
    ocsf.add_argument(
        "--s3-uri", metavar="S3_URI", help="write one object under s3://bucket/prefix/"
    )
    ocsf.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return run_command(f"export {args.target}", _export, args)


def _export(args: argparse.Namespace) -> int:
    from exporters.outlets import NoFinishedScan, load_findings

    settings, _url, engine = open_configured_database(args)
    try:
        scan = load_findings(engine)
    except NoFinishedScan:
        raise CommandError(
            "no finished scan in the database yet: run `vaultscan scan` first"
        ) from None
    if args.target == "securityhub":
        return _securityhub(args, settings, scan)
    return _ocsf(args, settings, scan)


def _aws_error(exc: Exception) -> CommandError:
    return CommandError(f"AWS call failed: {exc}")


def _securityhub(args: argparse.Namespace, settings: Any, scan: Any) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from exporters.outlets.securityhub import plan, product_arn, sync_findings
    from scanner.outlets import aws_session, caller_account

    region = args.region or settings.securityhub.region or settings.organization.region
    partition = settings.organization.partition
    try:
        session = aws_session(settings)
        account = args.account_id if args.dry_run and args.account_id else None
        account = account or caller_account(session, region)
        if args.dry_run:
            product = product_arn(partition, region, account)
            failing, _ = plan(
                scan,
                [],
                account_id=account,
                partition=partition,
                product=product,
                now=scan.finished_at,
            )
            print(json.dumps(failing, indent=2))
            return EXIT_OK
        client = session.client("securityhub", region_name=region)
        result = sync_findings(client, scan, account_id=account, region=region, partition=partition)
    except (BotoCoreError, ClientError) as exc:
        raise _aws_error(exc) from None
    print(
        f"Security Hub {region}, account {account}: {result.imported} failing check(s) "
        f"imported ({result.new} new), {result.resolved} resolved, "
        f"{len(result.failed)} rejected"
    )
    for item in result.failed[:10]:
        print(
            f"  rejected {item.get('Id')}: {item.get('ErrorCode')} {item.get('ErrorMessage')}",
            file=sys.stderr,
        )
    if result.failed:
        raise CommandError(f"Security Hub rejected {len(result.failed)} finding(s)")
    return EXIT_OK


def _ocsf(args: argparse.Namespace, settings: Any, scan: Any) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from exporters.outlets.ocsf import build_events, json_lines, validate
    from scanner.outlets import aws_session, ocsf_outlet

    if args.output is None and args.s3_uri is None:
        events = build_events(scan, partition=settings.organization.partition)
        validate(events)
        sys.stdout.write(json_lines(events))
        return EXIT_OK
    try:
        session = aws_session(settings) if args.s3_uri else None
        outlet = ocsf_outlet(settings, session, path=args.output, s3_uri=args.s3_uri)
        outlet.publish(scan)
    except (BotoCoreError, ClientError) as exc:
        raise _aws_error(exc) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    where = " and ".join(str(x) for x in (args.output, args.s3_uri) if x)
    print(f"wrote the OCSF events of run {scan.run_id} to {where}", file=sys.stderr)
    return EXIT_OK
