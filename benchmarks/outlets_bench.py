"""What the outlets cost per scan, without any network: building ASFF findings and OCSF
events (and validating the events against the OCSF schema) for N failing checks, and
rendering a drift notification. Run: .venv/bin/python benchmarks/outlets_bench.py [N]"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from exporters.outlets import ScanFindings
from exporters.outlets.notify import build_message, plain_text, slack_payload
from exporters.outlets.ocsf import build_events, validate
from exporters.outlets.securityhub import build_finding


def rows(count: int, now: datetime) -> list[dict]:
    role = "arn:aws:iam::{:012d}:role/BackupOperator"
    return [
        {
            "check_key": f"{n:012d}|eu-west-1|{role.format(n)}|kms:Decrypt",
            "account_id": f"{n:012d}",
            "account_name": f"acct-{n}",
            "ou_path_names": "Root/Prod",
            "region": "eu-west-1",
            "role_arn": role.format(n),
            "check": "kms:Decrypt",
            "resource": f"arn:aws:kms:eu-west-1:{n:012d}:key/0b7f7b5e",
            "status": "fail",
            "deciding_layer": "scp",
            "policy": "p-deny-backup",
            "statement": "DenyBackup",
            "message": "kms:Decrypt is denied by SCP p-deny-backup",
            "remediation": {
                "summary": "Narrow the SCP statement DenyBackup",
                "statement": {"Sid": "DenyBackup", "Effect": "Deny"},
                "commands": ["aws organizations update-policy --policy-id p-deny-backup"],
            },
            "failing_since": now,
        }
        for n in range(count)
    ]


def timed(label: str, action) -> None:
    start = time.perf_counter()
    action()
    print(f"{label}: {time.perf_counter() - start:.2f} s")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    now = datetime.now(UTC)
    failing = rows(count, now)
    drift = [{**row, "kind": "regressed", "current_status": "fail"} for row in failing]
    scan = ScanFindings(1, "succeeded", now, failing, drift)
    print(f"{count} failing checks, all regressed in this scan")
    timed(
        "ASFF findings built",
        lambda: [
            build_finding(
                r,
                account_id="123456789012",
                partition="aws",
                product="p",
                observed_at=now,
                updated_at=now,
            )
            for r in failing
        ],
    )
    events: list = []
    timed("OCSF events built", lambda: events.extend(build_events(scan)))
    timed("OCSF events validated", lambda: validate(events))
    message = build_message(scan, max_items=10)
    timed(
        "notification (Slack blocks and plain text)",
        lambda: (slack_payload(message), plain_text(message)),
    )


if __name__ == "__main__":
    main()
