"""Collection: everything `decide` needs from one member account, read through the
member read role. Never raises for AWS errors: an account that cannot be read gets
`AccountCollection.error`; a single unreadable KMS key is recorded on the key.

Calls per account (see docs/read-role.md for the exact table): one sts:AssumeRole;
IAM once (global): ListRoles, then per designated role GetRole, ListRolePolicies,
GetRolePolicy per inline policy, ListAttachedRolePolicies, GetPolicy + GetPolicyVersion per
managed policy/boundary not yet cached; per region: DescribeKey for the configured key,
ListBackupVaults, and per key GetKeyPolicy and ListGrants (DescribeKey for vault keys);
then the simulator per (role, region).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.handlers import json_decode_policies

from scanner.aws.iam_details import designated_roles
from scanner.aws.keys import (
    NOT_CREATED,
    NOT_FOUND,
    UNREADABLE,
    choose_configured,
    foreign_key,
    key_account,
    key_from_metadata,
    read_policy_grants_tags,
)
from scanner.aws.ratelimit import is_throttling, throttled_text
from scanner.aws.roles import SERVICE_LINKED_PATH, is_designated, policy_document
from scanner.aws.session import AccountAccessError, AwsSessions, Credentials, error_text
from scanner.aws.simulator import SimulationRequest, Simulator, SimulatorError
from scanner.config import Settings
from scanner.model import (
    Account,
    AccountCollection,
    KmsKey,
    NamedPolicy,
    Organization,
    PolicyDocument,
    Role,
)
from scanner.profiles import Profile
from scanner.request_context import ContextBuilder, scan_timestamp

log = logging.getLogger(__name__)

AWS_MANAGED_POLICY_PREFIX = ":iam::aws:policy/"
# AWS-managed policy documents are shared by every account; re-read them after this long
AWS_MANAGED_TTL_SECONDS = 3600.0
_DENIED_HINT = " (the read role needs this permission: see docs/read-role.md)"
_REGION_HINT = " (is the region enabled for this account? check `regions` in the settings)"
READ_ERROR_HINTS = {
    "AccessDenied": _DENIED_HINT,
    "AccessDeniedException": _DENIED_HINT,
    "UnauthorizedOperation": _DENIED_HINT,
    "UnrecognizedClientException": _REGION_HINT,
    "InvalidClientTokenId": _REGION_HINT,
}


class AccountReadError(Exception):
    """A call the account cannot be checked without failed; the message says which."""


class AwsManagedPolicies:
    """AWS-managed policy documents (same in every account), shared by all scan threads."""

    def __init__(self, ttl: float = AWS_MANAGED_TTL_SECONDS) -> None:
        self._lock = threading.Lock()
        self._documents: dict[str, tuple[PolicyDocument, float]] = {}
        self._reading: dict[str, threading.Lock] = {}
        self.ttl = ttl

    def reading(self, arn: str) -> threading.Lock:
        """Held while one thread reads `arn`, so threads that need the same policy at the
        same time wait for that read instead of repeating it: once per scan, not per
        account in flight."""
        with self._lock:
            return self._reading.setdefault(arn, threading.Lock())

    def get(self, arn: str) -> PolicyDocument | None:
        with self._lock:
            entry = self._documents.get(arn)
        if entry is None or time.monotonic() - entry[1] > self.ttl:
            return None
        return entry[0]

    def put(self, arn: str, document: PolicyDocument) -> None:
        with self._lock:
            self._documents[arn] = (document, time.monotonic())


def shared_policy_cache(sessions: AwsSessions) -> AwsManagedPolicies:
    with sessions.shared_lock:
        cache = sessions.shared.get("aws_managed_policies")
        if cache is None:
            cache = sessions.shared["aws_managed_policies"] = AwsManagedPolicies()
        return cache


def simulation_requests(
    profiles: list[Profile],
    partition: str,
    region: str,
    account: Account,
    keys: list[KmsKey],
    *,
    organization: Organization,
    role: Role,
    scanned_at: datetime | None = None,
    contexts: ContextBuilder | None = None,
) -> list[SimulationRequest]:
    """Every required (action, resource, context) of one role in one region, without
    duplicates, each with the whole request context the engine gets (the account's
    `contexts`, which decide then uses too; scanner.request_context.question_for). Key
    requirements are asked once per key that has a key ARN and a readable policy (a key
    AWS has not created yet has none, and an unreadable key is undecided: decide reports
    both from the key state instead)."""
    if contexts is None:
        contexts = ContextBuilder(organization, account, partition, scanned_at)
    usable = [key for key in keys if ":key/" in key.arn and key.key_state != UNREADABLE]
    seen: set[tuple[str, str]] = set()
    requests: list[SimulationRequest] = []
    for profile in profiles:
        for requirement in profile.requirements:
            for key in usable if requirement.needs_key else [None]:
                resource, context = contexts.question_for(role, region, requirement, key)
                if (requirement.action, resource) in seen:
                    continue
                seen.add((requirement.action, resource))
                requests.append((requirement.action, resource, context))
    return requests


def raw_documents(iam: Any) -> Any:
    """The member account's IAM client without botocore's `json_decode_policies`, which
    decodes every policy document of an answer: GetAccountAuthorizationDetails carries
    those of every role and customer-managed policy of the account, of which the scan
    uses the designated roles' few (decoded by `policy_document` when used)."""
    iam.meta.events.unregister("after-call.iam", json_decode_policies)
    return iam


class _AccountReader:
    def __init__(
        self,
        sessions: AwsSessions,
        settings: Settings,
        account: Account,
        credentials: Credentials,
        organization: Organization | None = None,
        complete: Callable[[], Organization] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.account = account
        self.organization = organization or Organization(None, [])
        # the whole organization, when `organization` is still being walked
        self.complete = complete or (lambda: self.organization)
        self.credentials = credentials
        self.partition = settings.organization.partition
        self.iam = raw_documents(sessions.client("iam", settings.organization.region, credentials))
        self.aws_managed = shared_policy_cache(sessions)
        # ARN -> document, or IAM's URL-encoded JSON of it until a role uses it
        self.customer_managed: dict[str, PolicyDocument | str] = {}

    # --- calls --------------------------------------------------------------------------

    def call(self, client: Any, operation: str, region: str = "", **params: Any) -> dict:
        try:
            return self.sessions.throttle.call(client, operation, **params)
        except ClientError as exc:
            raise self._read_error(client, operation, region, exc) from exc

    def items(
        self,
        client: Any,
        operation: str,
        key: str,
        token: tuple[str, str],
        region: str = "",
        **params: Any,
    ) -> list[dict[str, Any]]:
        try:
            pages = self.sessions.throttle.pages(client, operation, token=token, **params)
            return [item for page in pages for item in page.get(key, [])]
        except ClientError as exc:
            raise self._read_error(client, operation, region, exc) from exc

    def _read_error(
        self, client: Any, operation: str, region: str, exc: ClientError
    ) -> AccountReadError:
        action = f"{client.meta.service_model.signing_name}:{operation}"
        where = f" in {region}" if region else ""
        code = exc.response.get("Error", {}).get("Code", "")
        if is_throttling(exc):  # not a missing permission: say it was throttling
            return AccountReadError(f"{action}{where} {throttled_text(exc)}")
        hint = READ_ERROR_HINTS.get(code, "")
        return AccountReadError(f"{action}{where} failed: {error_text(exc)}{hint}")

    # --- IAM ----------------------------------------------------------------------------

    def roles(self) -> list[Role]:
        selector = self.settings.roles
        roles = []
        for raw in self.items(self.iam, "ListRoles", "Roles", ("Marker", "Marker")):
            name, path = raw["RoleName"], raw.get("Path", "/")
            if path.startswith(SERVICE_LINKED_PATH):
                continue  # never designated: do not even read its tags
            tags: dict[str, str] = {}
            if selector.tag is not None and not is_designated(name, path, tags, selector):
                tags = self.role_tags(name)  # ListRoles does not return tags
            if is_designated(name, path, tags, selector):
                role = self.role(raw, tags)
                if role is not None:
                    roles.append(role)
        return roles

    def role_tags(self, name: str) -> dict[str, str]:
        tags = self.items(self.iam, "ListRoleTags", "Tags", ("Marker", "Marker"), RoleName=name)
        return {tag["Key"]: tag["Value"] for tag in tags}

    def role(self, raw: dict[str, Any], tags: dict[str, str]) -> Role | None:
        name = raw["RoleName"]
        try:
            detail = self.sessions.throttle.call(self.iam, "GetRole", RoleName=name)["Role"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
                log.info("role deleted during scan", extra={"account": self.account.id})
                return None
            raise self._read_error(self.iam, "GetRole", "", exc) from exc
        role = Role(
            arn=detail["Arn"],
            name=name,
            path=detail.get("Path", "/"),
            tags=tags or {tag["Key"]: tag["Value"] for tag in detail.get("Tags", [])},
            role_id=detail.get("RoleId", ""),
        )
        inline_names = self.items(
            self.iam, "ListRolePolicies", "PolicyNames", ("Marker", "Marker"), RoleName=name
        )
        for policy_name in inline_names:
            answer = self.call(self.iam, "GetRolePolicy", RoleName=name, PolicyName=policy_name)
            document = policy_document(answer["PolicyDocument"])
            role.inline_policies.append(NamedPolicy(f"inline:{name}/{policy_name}", document))
        attached = self.items(
            self.iam,
            "ListAttachedRolePolicies",
            "AttachedPolicies",
            ("Marker", "Marker"),
            RoleName=name,
        )
        for item in attached:
            arn = item["PolicyArn"]
            role.managed_policies.append(NamedPolicy(arn, self.managed_policy(arn)))
        boundary = (detail.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if boundary:
            role.permissions_boundary = NamedPolicy(boundary, self.managed_policy(boundary))
        return role

    def managed_policy(self, arn: str) -> PolicyDocument:
        if AWS_MANAGED_POLICY_PREFIX in arn:
            with self.aws_managed.reading(arn):
                return self._managed_policy(arn)
        return self._managed_policy(arn)

    def _managed_policy(self, arn: str) -> PolicyDocument:
        aws_managed = AWS_MANAGED_POLICY_PREFIX in arn
        cached = self.aws_managed.get(arn) if aws_managed else self.customer_managed.get(arn)
        if cached is not None:
            document = policy_document(cached)
            if not aws_managed:  # decoded once: every role using it shares the object
                self.customer_managed[arn] = document
            return document
        version = self.call(self.iam, "GetPolicy", PolicyArn=arn)["Policy"]["DefaultVersionId"]
        answer = self.call(self.iam, "GetPolicyVersion", PolicyArn=arn, VersionId=version)
        document = policy_document(answer["PolicyVersion"]["Document"])
        if aws_managed:
            self.aws_managed.put(arn, document)
        else:
            self.customer_managed[arn] = document
        return document

    # --- KMS ----------------------------------------------------------------------------

    def keys(self, region: str) -> list[KmsKey]:
        kms = self.sessions.client("kms", region, self.credentials)
        found: dict[str, KmsKey] = {}
        candidates = self.settings.keys.candidates(region)
        key = choose_configured(
            candidates, region, lambda ref: self.describe_key(kms, region, ref, "configured")
        )
        found[key.arn] = key
        if self.settings.keys.include_vault_keys:
            backup = self.sessions.client("backup", region, self.credentials)
            vaults = self.items(
                backup, "ListBackupVaults", "BackupVaultList", ("NextToken", "NextToken"), region
            )
            for vault in vaults:
                arn = vault.get("EncryptionKeyArn")
                source = f"vault:{vault.get('BackupVaultName', '')}"
                if not arn:
                    continue
                if arn in found:
                    found[arn].sources.append(source)
                else:
                    found[arn] = self.describe_key(kms, region, arn, source)
        for key in found.values():
            if key.key_state in (NOT_CREATED, NOT_FOUND, UNREADABLE):
                continue
            if key.owner_account == self.account.id:
                read_policy_grants_tags(self.sessions, kms, key)
        return list(found.values())

    def describe_key(self, kms: Any, region: str, reference: str, source: str) -> KmsKey:
        owner = key_account(reference)
        if owner is not None and owner != self.account.id:
            # another account's key: read through its owner (GetKeyPolicy cannot cross)
            organization = self.complete()  # the owner may be listed later in the walk
            return foreign_key(self.sessions, organization, reference, source, self.account.id)
        try:
            metadata = self.sessions.throttle.call(kms, "DescribeKey", KeyId=reference)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NotFoundException":
                # AWS creates an AWS-managed key (alias/aws/<service>) on first use
                state = NOT_CREATED if reference.startswith("alias/aws/") else NOT_FOUND
            elif code in ("AccessDeniedException", "AccessDenied"):
                state = UNREADABLE
            else:
                raise self._read_error(kms, "DescribeKey", region, exc) from exc
            log.info(
                "key not readable",
                extra={"account": self.account.id, "call": "DescribeKey", "state": state},
            )
            return KmsKey(
                arn=self._reference_arn(region, reference),
                key_id=reference.rsplit("/", 1)[-1] if ":key/" in reference else "",
                region=region,
                aliases=[reference] if reference.startswith("alias/") else [],
                key_policy=None,
                key_state=state,
                key_manager="AWS" if reference.startswith("alias/aws/") else "CUSTOMER",
                sources=[source],
            )
        meta = metadata["KeyMetadata"]
        if meta.get("AWSAccountId") not in (None, self.account.id) or (
            key_account(meta["Arn"]) not in (None, self.account.id)
        ):
            # an alias of this account that points at another account's key cannot
            # exist, but a key id can resolve cross-account: read it through its owner
            return foreign_key(self.sessions, self.complete(), meta["Arn"], source, self.account.id)
        return key_from_metadata(meta, region, reference, source)

    def _reference_arn(self, region: str, reference: str) -> str:
        if reference.startswith("arn:"):
            return reference
        kind = "" if reference.startswith("alias/") else "key/"
        return f"arn:{self.partition}:kms:{region}:{self.account.id}:{kind}{reference}"


def _simulate(
    collection: AccountCollection,
    iam: Any,
    settings: Settings,
    profiles: list[Profile],
    organization: Organization,
    simulator: Simulator,
    contexts: ContextBuilder,
) -> None:
    """Ask the simulator every required question of each role in each region."""
    for region in settings.regions:
        for role in collection.roles:
            requests = simulation_requests(
                profiles,
                settings.organization.partition,
                region,
                collection.account,
                collection.keys[region],
                organization=organization,
                role=role,
                scanned_at=collection.scanned_at,
                contexts=contexts,
            )
            if requests:
                collection.simulations[(role.arn, region)] = simulator.simulate(
                    iam, role, collection.account, region, requests
                )


def read_roles(reader: _AccountReader, settings: Settings) -> list[Role]:
    """The designated roles: from iam:GetAccountAuthorizationDetails (one call), or per
    role (settings.iam_read "per-role", and for read roles not yet allowed the former)."""
    if settings.iam_read == "per-role":
        return reader.roles()
    try:
        return designated_roles(reader)
    except AccountReadError as exc:
        if "AccessDenied" not in str(exc):
            raise
        # an older read role: keep scanning with the per-role calls it does allow
        log.warning(
            "iam:GetAccountAuthorizationDetails denied; reading roles one by one",
            extra={"account": reader.account.id},
        )
        return reader.roles()


def account_contexts(
    organization: Organization,
    account: Account,
    settings: Settings,
    scanned_at: datetime | None = None,
) -> ContextBuilder:
    """The request contexts of one account's checks, at the time it is read (now unless
    given): built for the simulator while collecting, then reused by decide."""
    return ContextBuilder(
        organization,
        account,
        settings.organization.partition,
        scanned_at or scan_timestamp(datetime.now(UTC)),
    )


def collect_account(
    sessions: AwsSessions,
    settings: Settings,
    profiles: list[Profile],
    account: Account,
    organization: Organization,
    simulator: Simulator,
    contexts: ContextBuilder | None = None,
    complete: Callable[[], tuple[Organization, Simulator, ContextBuilder]] | None = None,
    unchanged: Callable[[AccountCollection, Organization], bool] | None = None,
) -> AccountCollection:
    """Roles, keys and simulator answers of one account. Thread-safe; never raises for
    AWS errors (they end up in `.error`, or on the key they concern). `contexts`: the
    account's request contexts, to share with decide (its scan time is the account's).

    While the organization is still being walked, `organization` is what is known so
    far and `complete()` waits for the whole one (the simulator made from it, and the
    contexts built again from it): the account's roles and keys are read meanwhile, its
    questions asked after. When `unchanged` says the roles and keys read, in the whole
    organization, are those of an earlier read, the simulator is not asked
    (scanner.incremental)."""
    if contexts is None:
        contexts = account_contexts(organization, account, settings)
    collection = AccountCollection(account=account, scanned_at=contexts.scanned_at)
    before = sessions.recorder.for_account(account.id)
    try:
        credentials = sessions.assume_member(account.id)
        reader = _AccountReader(
            sessions,
            settings,
            account,
            credentials,
            organization,
            complete=(lambda: complete()[0]) if complete else None,
        )
        collection.roles = read_roles(reader, settings)
        for region in settings.regions:
            collection.keys[region] = reader.keys(region)
        if complete is not None:
            organization, simulator, contexts = complete()
        if unchanged is None or not unchanged(collection, organization):
            _simulate(collection, reader.iam, settings, profiles, organization, simulator, contexts)
    except AccountAccessError as exc:
        collection.error = exc.reason
    except (AccountReadError, SimulatorError) as exc:
        collection.error = str(exc)
    except ClientError as exc:  # e.g. the simulator call itself was denied
        collection.error = error_text(exc)
    except BotoCoreError as exc:  # network, endpoint or credential problems
        collection.error = f"{type(exc).__name__}: {exc}"
    finally:
        sessions.release_account(account.id)
        collection.api_calls = sessions.recorder.for_account(account.id) - before
    if collection.error:
        log.warning(
            "account not collected", extra={"account": account.id, "error": collection.error}
        )
    return collection
