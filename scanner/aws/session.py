"""One boto3 Session for the whole scan, the clients made from it, and AssumeRole.

A Session per account costs about 8x more than clients made from one Session, so every
client comes from `AwsSessions.session`. boto3 Sessions are not thread-safe: client
creation is serialized by a lock, and clients (which are thread-safe) are cached.
Making a client still costs about 8 ms of CPU (its class, its event handlers, its
endpoint), a quarter of a member account's scan with seven clients each: a member
account's clients go back to an idle pool when the account is done and the next account
takes them over with its own credentials (`client_pool.py`).
Clients carry the retry policy of scanner.aws.ratelimit (botocore standard mode, the
user's AWS_RETRY_MODE / AWS_MAX_ATTEMPTS first), except the Organizations client when
its Throttle retries: one attempt per call there, so every retry is paced by the
per-organization buckets. Everything else of the user's SDK configuration (profile,
AWS_ENDPOINT_URL, ...) applies unchanged.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from scanner.aws.calls import CallRecorder
from scanner.aws.client_pool import IdleClients
from scanner.aws.ratelimit import (
    ORGANIZATIONS_RATES,
    Throttle,
    is_throttling,
    paced_retry,
    sdk_retry_config,
    throttled_text,
)
from scanner.aws.sizing import idle_limit, pool_size
from scanner.aws.timestamps import use_fast_timestamps
from scanner.config import Settings

log = logging.getLogger(__name__)

# Credentials closer than this to expiry are renewed before use.
RENEW_BEFORE = timedelta(minutes=5)
SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


@dataclass(frozen=True)
class Credentials:
    """Temporary credentials of one assumed role; secrets are kept out of repr and logs."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    account_id: str
    expiration: datetime | None = None
    role_arn: str = ""

    def expiring(self, now: datetime | None = None) -> bool:
        if self.expiration is None:
            return False
        return self.expiration - (now or datetime.now(UTC)) < RENEW_BEFORE


class AccountAccessError(Exception):
    """The scanner could not enter an account (AssumeRole failed)."""

    def __init__(self, account_id: str, reason: str) -> None:
        super().__init__(f"account {account_id}: {reason}")
        self.account_id = account_id
        self.reason = reason


def error_text(exc: BaseException) -> str:
    """`Code: message` for AWS errors, the message for anything else."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Unknown')}: {error.get('Message', '')}".strip()
    return str(exc)


def session_name(prefix: str, host: str | None = None) -> str:
    """A recognisable role session name (`vaultscan-<host>`), valid for STS (<= 64 chars)."""
    host = (host or socket.gethostname()).split(".")[0]
    return SESSION_NAME_UNSAFE.sub("-", f"{prefix}-{host}")[:64]


class AwsSessions:
    """Clients and member-account credentials for one scanner process."""

    def __init__(
        self,
        settings: Settings,
        *,
        session: boto3.Session | None = None,
        recorder: CallRecorder | None = None,
        org_throttle: Throttle | None = None,
        throttle: Throttle | None = None,
        host: str | None = None,
    ) -> None:
        self.settings = settings
        self.session = session or boto3.Session(profile_name=settings.organization.profile)
        use_fast_timestamps(self.session)
        self.recorder = recorder or CallRecorder()
        # Organizations quotas are per organization: one set of buckets for the scan.
        self.org_throttle = org_throttle or Throttle(
            ORGANIZATIONS_RATES, retry=paced_retry(self.session)
        )
        # member-account calls: no pacing (their quotas are per account); retries are the SDK's
        self.throttle = throttle or Throttle()
        self.session_name = session_name(settings.member.session_name, host)
        self._retry_config = sdk_retry_config(self.session)
        # one retry layer: the org throttle's (paced) when it retries, else botocore's
        paced = self.org_throttle.retry.max_attempts > 1
        self._org_retry_config = sdk_retry_config(self.session, 1 if paced else None)
        self.shared_pool_size = pool_size(settings)
        self._client_lock = threading.Lock()
        # (service, region, account id, access key id) -> client; ambient: account None
        self._clients: dict[tuple[str, str, str | None, str | None], Any] = {}
        # member accounts' clients between two accounts: (service, region) -> clients
        self._idle = IdleClients(idle_limit(settings))
        self._credentials: dict[str, Credentials] = {}
        self._account_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._org_credentials: Credentials | None = None
        self._org_lock = threading.Lock()
        # scan-wide caches owned by other modules (e.g. AWS-managed policy documents)
        self.shared: dict[str, Any] = {}
        self.shared_lock = threading.Lock()

    # --- clients ----------------------------------------------------------------------

    def client(self, service: str, region: str, credentials: Credentials | None = None) -> Any:
        """A cached client of `service` in `region`, with `credentials` or the ambient ones."""
        key = (
            service,
            region,
            credentials.account_id if credentials else None,
            credentials.access_key_id if credentials else None,
        )
        with self._client_lock:
            cached = self._clients.get(key)
            if cached is not None:
                return cached
            secrets: dict[str, str] = {}
            if credentials is not None:
                secrets = {
                    "aws_access_key_id": credentials.access_key_id,
                    "aws_secret_access_key": credentials.secret_access_key,
                    "aws_session_token": credentials.session_token,
                }
            if credentials is not None:
                reused = self._idle.take(service, region, credentials)
                if reused is not None:
                    self.recorder.attach(reused, credentials.account_id)
                    self._clients[key] = reused
                    return reused
            config = self._org_retry_config if service == "organizations" else self._retry_config
            if credentials is None:
                # the scanner's own clients (sts, organizations) are shared by every scan
                # and discovery thread: one pooled connection each, not new ones per call
                config = config.merge(Config(max_pool_connections=self.shared_pool_size))
            client = self.session.client(service, region_name=region, config=config, **secrets)
            self.recorder.attach(client, credentials.account_id if credentials else None)
            self._clients[key] = client
            return client

    def cached_clients(self, account_id: str) -> list[Any]:
        """The cached clients holding credentials of `account_id`."""
        with self._client_lock:
            return [client for key, client in self._clients.items() if key[2] == account_id]

    def release_account(self, account_id: str) -> int:
        """Forget the account's clients once it is collected: a client holds about 300 KiB
        and its own connection pool, too much to keep for every account of a large
        organization. They wait in the idle pool for the next account (up to the number
        of accounts in flight), the rest are closed. Its credentials stay cached for
        reuse until they expire."""
        with self._client_lock:
            keys = [key for key in self._clients if key[2] == account_id]
            released = [(key, self._clients.pop(key)) for key in keys]
            for (service, region, _, _), client in released:
                self.recorder.detach(client)
                self._idle.put(service, region, client)
        return len(released)

    def org_client(self) -> Any:
        """The Organizations client: through `organization.role_arn` when configured."""
        org = self.settings.organization
        credentials = None
        if org.role_arn:
            with self._org_lock:
                if self._org_credentials is None or self._org_credentials.expiring():
                    self._org_credentials = self._assume(
                        org.role_arn, _account_of_role(org.role_arn), org.external_id
                    )
                credentials = self._org_credentials
        return self.client("organizations", org.region, credentials)

    # --- member accounts ----------------------------------------------------------------

    def member_role_arn(self, account_id: str) -> str:
        member = self.settings.member
        partition = self.settings.organization.partition
        path, name = member.read_role_path, member.read_role_name
        return f"arn:{partition}:iam::{account_id}:role{path}{name}"

    def assume_member(self, account_id: str) -> Credentials:
        """Credentials for the read role in `account_id`: one sts:AssumeRole per account,
        reused for every region until close to expiry. Raises AccountAccessError."""
        with self._account_lock(account_id):
            cached = self._credentials.get(account_id)
            if cached is not None and not cached.expiring():
                return cached
            credentials = self._assume(
                self.member_role_arn(account_id), account_id, self.settings.member.external_id
            )
            self._credentials[account_id] = credentials
            return credentials

    def _account_lock(self, account_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._account_locks.setdefault(account_id, threading.Lock())

    def _assume(self, role_arn: str, account_id: str, external_id: str | None) -> Credentials:
        sts = self.client("sts", self.settings.organization.region)
        params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": self.session_name}
        if external_id:
            params["ExternalId"] = external_id
        try:
            answer = self.throttle.call(sts, "AssumeRole", **params)
        except (ClientError, BotoCoreError) as exc:
            detail = throttled_text(exc) if is_throttling(exc) else error_text(exc)
            reason = f"cannot assume {role_arn}: {detail}"
            log.warning("assume role failed", extra={"account": account_id, "call": "AssumeRole"})
            raise AccountAccessError(account_id, reason) from exc
        raw = answer["Credentials"]
        log.debug("assumed role", extra={"account": account_id, "call": "AssumeRole"})
        return Credentials(
            access_key_id=raw["AccessKeyId"],
            secret_access_key=raw["SecretAccessKey"],
            session_token=raw["SessionToken"],
            account_id=account_id,
            expiration=raw.get("Expiration"),
            role_arn=role_arn,
        )


def _account_of_role(role_arn: str) -> str:
    return role_arn.split(":")[4]
