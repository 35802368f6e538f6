"""Fixtures for the end-to-end scan tests: a seeded sandbox organization in moto (one per
test module: seeding costs seconds) and a migrated database per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from scanner.aws.ratelimit import Throttle
from scanner.aws.session import AwsSessions
from scanner.config import Settings
from scanner.sandbox import SandboxOrg, sandbox_settings, seed_sandbox_organization
from scanner.sandbox_aws import one_request_at_a_time


@dataclass
class Seeded:
    session: boto3.Session
    sandbox: SandboxOrg
    settings: Settings

    def sessions(self, settings: Settings | None = None) -> AwsSessions:
        # moto has no Organizations quotas: skip the client-side rate limit
        return AwsSessions(settings or self.settings, session=self.session, org_throttle=Throttle())


def _seed() -> Iterator[Seeded]:
    # one request at a time inside moto: scans run on threads (scanner/sandbox_aws.py)
    with mock_aws(), one_request_at_a_time():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        sandbox = seed_sandbox_organization(session)
        yield Seeded(session, sandbox, sandbox_settings(sandbox))


@pytest.fixture(scope="module")
def seeded() -> Iterator[Seeded]:
    """One sandbox for the whole module; tests must not change it (use `fresh_sandbox`).
    What each account is expected to show is checked again at the end of the module."""
    for sandbox in _seed():
        before = _expectations(sandbox)
        yield sandbox
        assert _expectations(sandbox) == before, "a test changed the shared sandbox"


def _expectations(seeded: Seeded) -> list[tuple[str, object]]:
    return [(account.name, account.expectation) for account in seeded.sandbox.accounts]


@pytest.fixture
def fresh_sandbox() -> Iterator[Seeded]:
    """A sandbox of the test's own, for tests that change it (drift). moto holds one
    organization per process: use it only in a module that does not use `seeded`."""
    yield from _seed()
