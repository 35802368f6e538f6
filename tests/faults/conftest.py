"""The fault suite: every test here is marked `faults` (run alone with `pytest -m faults`;
it is also part of the normal run)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from processes import MotoProcess, scratch_database


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


@dataclass
class SeededMoto:
    moto: MotoProcess
    sandbox: object  # scanner.sandbox.SandboxOrg

    def settings(self, **overrides: object):
        from scanner.sandbox import sandbox_settings

        return sandbox_settings(self.sandbox, **overrides)


def seed(moto: MotoProcess) -> object:
    from scanner.sandbox import seed_sandbox_organization

    with moto.client_env():
        import boto3

        return seed_sandbox_organization(boto3.Session(region_name="us-east-1"))


@pytest.fixture(scope="module")
def seeded_moto() -> Iterator[SeededMoto]:
    """A moto server process holding the sandbox organization, for one test module."""
    moto = MotoProcess().start()
    try:
        yield SeededMoto(moto, seed(moto))
    finally:
        moto.stop()


@pytest.fixture
def scratch_url(postgres_admin_conninfo: str) -> Iterator[str]:
    """A database of the test's own that subprocesses can reach (SQLAlchemy URL)."""
    with scratch_database(postgres_admin_conninfo) as url:
        yield url


@dataclass
class Mocked:
    """The sandbox organization in moto's in-process mock (for faults injected into the
    SDK's own event hooks)."""

    session: object  # boto3.Session
    sandbox: object

    def settings(self, **overrides: object):
        from scanner.sandbox import sandbox_settings

        return sandbox_settings(self.sandbox, **overrides)

    def sessions(self, settings):
        from scanner.aws.ratelimit import Throttle
        from scanner.aws.session import AwsSessions

        return AwsSessions(settings, session=self.session, org_throttle=Throttle())


@pytest.fixture(scope="module")
def mocked() -> Iterator[Mocked]:
    import boto3
    from moto import mock_aws

    from scanner.sandbox import seed_sandbox_organization

    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        yield Mocked(session, seed_sandbox_organization(session))


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retries without their sleeps (the number of attempts is unchanged)."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
