"""Fixtures for the event-driven rescans: a sandbox organization in moto of the test's own
(the tests change it) and a migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from scanner.aws.calls import CallRecorder
from scanner.aws.ratelimit import Throttle
from scanner.aws.session import AwsSessions
from scanner.config import Settings
from scanner.sandbox import SandboxOrg, sandbox_settings, seed_sandbox_organization


@dataclass
class Seeded:
    session: boto3.Session
    sandbox: SandboxOrg
    settings: Settings

    def sessions(self, recorder: CallRecorder | None = None) -> AwsSessions:
        return AwsSessions(
            self.settings, session=self.session, org_throttle=Throttle(), recorder=recorder
        )


@pytest.fixture
def sandbox() -> Iterator[Seeded]:
    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        org = seed_sandbox_organization(session)
        yield Seeded(session, org, sandbox_settings(org))
