"""iam:GetAccountAuthorizationDetails against the per-role IAM calls, on the fake AWS:
calls, wall time and CPU time to read the designated roles of one account.

Run: .venv/bin/python benchmarks/iam_read_bench.py [--accounts 20] [--latency-ms 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from scan_scale import fake_aws  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=40.0)
    args = parser.parse_args()
    fake = argparse.Namespace(
        accounts=args.accounts,
        ous=4,
        regions="us-east-1",
        roles="2-2",
        keys="1-1",
        latency_ms=args.latency_ms,
    )
    with fake_aws(fake) as endpoint:
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="scanner",
            AWS_SECRET_ACCESS_KEY="scanner",
            AWS_DEFAULT_REGION="us-east-1",
        )
        from scanner.aws.collect import _AccountReader, read_roles
        from scanner.aws.organizations import discover
        from scanner.aws.session import AwsSessions
        from scanner.config import load_settings

        for mode in ("per-role", "authorization-details", "per-role", "authorization-details"):
            settings = load_settings(overrides={"iam_read": mode})
            sessions = AwsSessions(settings)
            organization = discover(sessions, settings)
            accounts = organization.accounts[: args.accounts]
            for account in accounts:  # credentials first: only the IAM reads are timed
                sessions.assume_member(account.id)
            before = sessions.recorder.counts.copy()
            wall, cpu = time.perf_counter(), time.process_time()
            roles = 0
            for account in accounts:
                credentials = sessions.assume_member(account.id)
                reader = _AccountReader(sessions, settings, account, credentials, organization)
                roles += len(read_roles(reader, settings))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            calls = sum((sessions.recorder.counts - before).values())
            print(
                f"{mode:22s} roles/account {roles / len(accounts):.1f}  "
                f"calls/account {calls / len(accounts):5.1f}  "
                f"wall/account {1000 * wall / len(accounts):6.1f} ms  "
                f"CPU/account {1000 * cpu / len(accounts):5.1f} ms"
            )


if __name__ == "__main__":
    main()
