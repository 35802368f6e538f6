"""Fixtures for the AWS-side tests (moto: no AWS account is ever reached)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest
from aws_helpers import MotoOrg
from moto import mock_aws


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, and none of the developer's own AWS configuration."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/vaultscan-test-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/vaultscan-test-credentials")
    for name in [key for key in os.environ if key.startswith("VAULTSCAN_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def moto_org(aws_env: None) -> Iterator[MotoOrg]:
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        client = session.client("organizations")
        client.create_organization(FeatureSet="ALL")
        root = client.list_roots()["Roots"][0]["Id"]
        client.enable_policy_type(RootId=root, PolicyType="SERVICE_CONTROL_POLICY")
        management = client.describe_organization()["Organization"]["MasterAccountId"]
        yield MotoOrg(session=session, client=client, root_id=root, management_id=management)
