"""End to end the way a new user points vaultscan at an AWS stand-in organization: a moto
server reached through AWS_ENDPOINT_URL, roles designated by a tag only, an ordered key
list whose first key does not exist, and the simulator path (`simulator: aws`) answered
by the AWS-like stand-in. Every verdict must match the sandbox's expectations."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator

import boto3
import pytest
from aws_like_simulator import AwsLikeSimulator
from sandbox_checks import assert_account_verdicts

from scanner.aws.ratelimit import Throttle
from scanner.aws.session import AwsSessions
from scanner.config import Settings
from scanner.decide import KEY_STATE_CHECK
from scanner.runner import run_scan
from scanner.sandbox import READ_ROLE_NAME, VAULT_KEY_ALIAS, seed_sandbox_organization
from storage.repository import latest_results

# the accounts with the real-organization patterns, plus one plain failure
NAMES = (
    "security-keys",
    "prod-analytics",
    "workloads-archive",
    "analytics-reporting",
    "workloads-data",
    "platform-tools",
    "prod-catalog",
    "legacy-billing",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith(("AWS_", "VAULTSCAN_"))]:
        del os.environ[name]
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/nonexistent/vaultscan-test-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/vaultscan-test-credentials",
    )
    try:
        yield os.environ["AWS_ENDPOINT_URL"]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def test_tag_selector_key_fallback_and_simulator_through_an_endpoint(endpoint, db_engine):
    sandbox = seed_sandbox_organization(boto3.Session(region_name="us-east-1"))
    ids = [sandbox.by_name(name).account_id for name in NAMES]
    settings = Settings(
        regions=list(sandbox.regions),
        member={"read_role_name": READ_ROLE_NAME},
        roles={"tag": {"key": "vaultscan:designated", "value": "backup"}},
        keys={"default": ["alias/vault-key", VAULT_KEY_ALIAS]},
        accounts={"include": ids},
        organization={"region": "us-east-1"},
        simulator="aws",
        concurrency=4,
    )
    # a session like the scanner's own (the environment's endpoint), with the stand-in
    session = boto3.Session(region_name="us-east-1")
    stand_in = AwsLikeSimulator(session)
    sessions = AwsSessions(settings, session=session, org_throttle=Throttle())

    report = run_scan(settings, engine=db_engine, sessions=sessions)

    assert report.simulator_name == "aws" and report.totals.status == "succeeded"
    assert {o.status for o in report.summary.outcomes} == {"ok"}
    assert stand_in.calls, "the simulator path was not taken"
    by_account: dict[str, list] = {}
    for result in report.summary.results:
        by_account.setdefault(result.account_id, []).append(result)
    assert len(by_account) == len(NAMES)
    for name in NAMES:
        assert_account_verdicts(sandbox, name, by_account[sandbox.by_name(name).account_id], "aws")
    # the key-state check says which key of the list was chosen, and why
    states = [r for r in report.summary.results if r.check == KEY_STATE_CHECK]
    assert states and all(
        f"{VAULT_KEY_ALIAS}, because alias/vault-key does not exist in {r.region}" in r.message
        for r in states
    )
    assert report.totals.checks_total == sandbox.check_count(set(ids))
    assert report.totals.disagreements == 0
    stored = latest_results(db_engine, include_evidence=True)
    assert stored and all(
        row["evidence"]["confidence"]["level"] == "full-context"
        for row in stored
        if row["role_arn"]
    )
