"""Reading the KMS keys a region's checks use: the configured key (the first of an
ordered list that exists), the keys of existing vaults, and for each its description,
key policy, grants and tags.

A key owned by another account of the organization (a central vault key in a security
account, the pattern AWS recommends for cross-account backup) cannot be read from the
account that uses it: GetKeyPolicy "cannot perform this operation on a KMS key in a
different AWS account" (AWS KMS API Reference: GetKeyPolicy). It is read through the
owner account's read role instead, once per key per scan however many accounts use it
(`OwnerKeys`, shared by the scan's threads). A key in an account outside the
organization is reported unreadable with the reason: undecided, never pass or fail.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from scanner.aws.session import AccountAccessError, AwsSessions, error_text
from scanner.model import KmsKey, Organization

log = logging.getLogger(__name__)

# key states that are not the key's own (`KeyState`) but why it could not be read
NOT_CREATED, NOT_FOUND, UNREADABLE = "NotCreated", "NotFound", "Unreadable"
MISSING_STATES = (NOT_CREATED, NOT_FOUND)


def key_account(reference: str) -> str | None:
    """The account of a key or alias ARN; None for an alias name or key id."""
    parts = reference.split(":")
    return parts[4] if reference.startswith("arn:") and len(parts) > 5 else None


def key_region(reference: str) -> str | None:
    parts = reference.split(":")
    return parts[3] if reference.startswith("arn:") and len(parts) > 5 else None


def exists(key: KmsKey) -> bool:
    """Does the key exist (or will AWS create it on first use: an AWS managed alias)?"""
    return key.key_state != NOT_FOUND


def choose_configured(
    candidates: list[str], region: str, describe: Callable[[str], KmsKey]
) -> KmsKey:
    """The first candidate that exists in the region; the key records why it was chosen.

    An AWS managed key (alias/aws/backup) counts as existing before first use: AWS
    creates it the first time AWS Backup uses it (AWS KMS Developer Guide, "AWS managed
    keys"). When no candidate exists, the first is reported (as not found)."""
    tried: list[str] = []
    described: list[KmsKey] = []
    for reference in candidates:
        key = describe(reference)
        if exists(key):
            key.choice = _choice_words(reference, tried, region, len(candidates))
            return key
        tried.append(reference)
        described.append(key)
    first = described[0]
    if len(candidates) > 1:
        first.choice = f"none of {', '.join(candidates)} exists in {region}."
    return first


def _choice_words(reference: str, skipped: list[str], region: str, count: int) -> str:
    if count == 1:
        return ""
    if not skipped:
        return f"{reference}, the first configured key, exists in {region}."
    return (
        f"{reference}, because {', '.join(skipped)} does not exist in {region} "
        "(keys are tried in the configured order)."
    )


class OwnerKeys:
    """Keys read through their owner account's read role, once per key ARN per scan."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, KmsKey] = {}
        self._key_locks: dict[str, threading.Lock] = {}

    def get(self, arn: str, read: Callable[[], KmsKey]) -> KmsKey:
        with self._lock:
            lock = self._key_locks.setdefault(arn, threading.Lock())
        with lock:  # a second account asking for the same key waits for the first read
            known = self._keys.get(arn)
            if known is None:
                known = self._keys[arn] = read()
        return replace(known, sources=list(known.sources), choice=known.choice)

    def __len__(self) -> int:
        return len(self._keys)


def owner_keys(sessions: AwsSessions) -> OwnerKeys:
    with sessions.shared_lock:
        cache = sessions.shared.get("owner_keys")
        if cache is None:
            cache = sessions.shared["owner_keys"] = OwnerKeys()
        return cache


def read_policy_grants_tags(sessions: AwsSessions, kms: Any, key: KmsKey) -> None:
    """Key policy, grants and tags of a key the client's account owns; a key that cannot
    be read is marked Unreadable with AWS's reason, never fatal."""
    throttle = sessions.throttle
    try:
        answer = throttle.call(kms, "GetKeyPolicy", KeyId=key.arn, PolicyName="default")
        key.key_policy = json.loads(answer["Policy"])
        grants = throttle.pages(kms, "ListGrants", token=("Marker", "NextMarker"), KeyId=key.arn)
        key.grants = [grant for page in grants for grant in page.get("Grants", [])]
        tags = throttle.pages(
            kms, "ListResourceTags", token=("Marker", "NextMarker"), KeyId=key.arn
        )
        key.tags = {tag["TagKey"]: tag["TagValue"] for page in tags for tag in page.get("Tags", [])}
    except ClientError as exc:
        log.info("key policy not readable", extra={"call": "GetKeyPolicy", "key": key.arn})
        key.key_state = UNREADABLE
        key.key_policy = None
        key.sources.append(f"unreadable:{error_text(exc)}")
    except (TypeError, ValueError) as exc:  # an answer that is not a JSON policy document
        log.warning("key policy is not JSON", extra={"call": "GetKeyPolicy", "key": key.arn})
        key.key_state = UNREADABLE
        key.key_policy = None
        key.sources.append(
            f"unreadable:kms:GetKeyPolicy returned a key policy that is not JSON ({exc})"
        )


def foreign_key(
    sessions: AwsSessions,
    organization: Organization,
    reference: str,
    source: str,
    requester: str,
) -> KmsKey:
    """A key owned by another account, read through that account's read role (cached
    for the scan). `requester` is the account whose check needs it (its calls are
    counted there)."""
    owner = key_account(reference) or ""
    region = key_region(reference) or ""
    if organization.member(owner) is None:
        return _unreadable(
            reference,
            region,
            source,
            f"its account {owner} is not in the organization, so vaultscan cannot read its "
            "key policy; whether the role may use it is undecided",
        )

    def read() -> KmsKey:
        return _read_in_owner(sessions, owner, region, reference, requester)

    key = owner_keys(sessions).get(reference, read)
    key.sources = [source, *(item for item in key.sources if item.startswith("unreadable:"))]
    return key


def _read_in_owner(
    sessions: AwsSessions, owner: str, region: str, reference: str, requester: str
) -> KmsKey:
    try:
        credentials = sessions.assume_member(owner)
    except AccountAccessError as exc:
        return _unreadable(reference, region, "", f"owner account {owner}: {exc.reason}")
    # a client of its own, closed here: the owner's cached clients belong to the
    # owner's own collection, which may release them at any time
    kms = sessions.session.client(
        "kms",
        region_name=region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
    )
    sessions.recorder.attach(kms, requester)
    try:
        meta = sessions.throttle.call(kms, "DescribeKey", KeyId=reference)["KeyMetadata"]
        key = key_from_metadata(meta, region, reference, "")
        key.sources = []
        if key.key_state not in MISSING_STATES:
            read_policy_grants_tags(sessions, kms, key)
        return key
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NotFoundException":
            key = _unreadable(reference, region, "", "")
            key.key_state, key.sources = NOT_FOUND, []
            return key
        return _unreadable(reference, region, "", f"owner account {owner}: {error_text(exc)}")
    except BotoCoreError as exc:
        return _unreadable(reference, region, "", f"owner account {owner}: {exc}")
    finally:
        kms.close()


def key_from_metadata(meta: dict[str, Any], region: str, reference: str, source: str) -> KmsKey:
    return KmsKey(
        arn=meta["Arn"],
        key_id=meta["KeyId"],
        region=region,
        aliases=[reference] if reference.startswith("alias/") or ":alias/" in reference else [],
        key_state=meta.get("KeyState", "Enabled"),
        key_spec=meta.get("KeySpec") or meta.get("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"),
        key_usage=meta.get("KeyUsage", "ENCRYPT_DECRYPT"),
        key_manager=meta.get("KeyManager", "CUSTOMER"),
        deletion_date=meta.get("DeletionDate"),
        sources=[source] if source else [],
    )


def _unreadable(reference: str, region: str, source: str, reason: str) -> KmsKey:
    sources = [source] if source else []
    if reason:
        sources.append(f"unreadable:{reason}")
    return KmsKey(
        arn=reference,
        key_id=reference.rsplit("/", 1)[-1] if ":key/" in reference else "",
        region=region,
        aliases=[reference] if ":alias/" in reference else [],
        key_policy=None,
        key_state=UNREADABLE,
        sources=sources,
    )
