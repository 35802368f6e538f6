"""The request context of one check: the condition keys AWS would put in the request
when the designated role really creates a vault (or AWS Backup uses the vault's key on
its behalf), built once from the collected facts and handed, unchanged, to vaultscan's
engine and to AWS's policy simulator (as typed `ContextEntries`).

Pure: no AWS calls, no database. Every key, its source and the AWS page that documents
it: docs/context.md. Keys vaultscan cannot know (the caller's IP address, MFA, ...) stay
absent; `UNKNOWABLE` says why, and a verdict that turns on one says so
(scanner.context_gaps).

AWS pages relied on:
- IAM User Guide, "AWS global condition context keys"
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html
- IAM User Guide, "Forward access sessions"
  https://docs.aws.amazon.com/IAM/latest/UserGuide/access_forward_access_sessions.html
- AWS KMS Developer Guide, "AWS KMS condition keys"
  https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from scanner.model import Account, KmsKey, Organization, Role
from scanner.policy.context import ContextPart, normalize_context
from scanner.profiles import Requirement

ContextScalar = str | bool | int | float
ContextValue = ContextScalar | list[str]

# SimulatePrincipalPolicy ContextKeyType of every key the builder sets whose type is
# not plain "string" (IAM API Reference: ContextEntry; the types from the global
# condition keys page: Bool, Date, Numeric, multivalued String).
KEY_TYPES: dict[str, str] = {
    "aws:principalorgpaths": "stringList",
    "aws:resourceorgpaths": "stringList",
    "aws:calledvia": "stringList",
    "aws:principalisawsservice": "boolean",
    "aws:viaawsservice": "boolean",
    "aws:securetransport": "boolean",
    "kms:grantisforawsresource": "boolean",
    "aws:currenttime": "date",
    "aws:epochtime": "numeric",
}

# Keys that the real request carries but vaultscan cannot know, and why. A policy that
# reads one is evaluated as if it were absent, and the verdict says so.
UNKNOWABLE: dict[str, str] = {
    "aws:sourceip": "the caller's IP address is not known before the call",
    "aws:sourcevpc": "whether the call comes through a VPC endpoint is not known",
    "aws:sourcevpce": "whether the call comes through a VPC endpoint is not known",
    "aws:vpcsourceip": "whether the call comes through a VPC endpoint is not known",
    "aws:multifactorauthpresent": "how the role session was authenticated is not known",
    "aws:multifactorauthage": "how the role session was authenticated is not known",
    "aws:tokenissuetime": "when the role session was created is not known",
    "aws:sourceidentity": "the source identity of the role session is not known",
    "aws:useragent": "the caller's client is not known",
    "aws:referer": "the caller's client is not known",
    "aws:requesttag": "the tags a caller sends with the request are not known",
    "aws:tagkeys": "the tags a caller sends with the request are not known",
    "aws:resourceorgid": "the resource's account is not in the scanned organization",
    "aws:resourceorgpaths": "the resource's account is not in the scanned organization",
}

# Keys that are absent from these requests by AWS's own rules (not unknown): a policy
# that reads them sees them absent in reality too.
ABSENT_BY_RULE: dict[str, str] = {
    "aws:username": "present only for IAM users, never for a role",
    "aws:sourcearn": "present only when a service principal calls directly",
    "aws:sourceaccount": "present only when a service principal calls directly",
    "aws:sourceorgid": "present only when a service principal calls directly",
    "aws:sourceorgpaths": "present only when a service principal calls directly",
    "aws:calledvia": "AWS Backup is not among the services that set aws:CalledVia",
    "aws:calledviafirst": "AWS Backup is not among the services that set aws:CalledVia",
    "aws:calledvialast": "AWS Backup is not among the services that set aws:CalledVia",
}

# Services documented as setting aws:CalledVia (IAM: AWS global condition context keys,
# aws:CalledVia). A forward access session from any other service carries
# aws:ViaAWSService = true but no aws:CalledVia.
CALLED_VIA_SERVICES = frozenset(
    {
        "athena.amazonaws.com",
        "cloudformation.amazonaws.com",
        "dynamodb.amazonaws.com",
        "kms.amazonaws.com",
    }
)

# The session name in aws:userid ("role-id:session-name") is chosen by whoever assumes
# the role; this one stands for it (a policy on aws:userid usually reads ROLEID:*).
REPRESENTATIVE_SESSION = "vaultscan-check"


@dataclass(slots=True)
class RequestContext:
    """The condition keys of one request; `values` maps key -> value as policies read it.
    Built once per check and never changed (not frozen: a frozen dataclass takes
    several times as long to build)."""

    values: dict[str, ContextValue]
    # keys whose value stands for an unknown one (the session name in aws:userid)
    representative: frozenset[str] = frozenset()
    # keys known to be absent from this request by AWS's rules -> why
    absent_by_rule: dict[str, str] = field(default_factory=dict)
    # `values` as the engine reads them, normalized in pieces that other requests share
    # (for Scenario.with_request); empty when not built that way
    parts: tuple[ContextPart, ...] = field(default=(), compare=False, repr=False)

    def key_type(self, key: str) -> str:
        return KEY_TYPES.get(key.lower(), "string")

    def context_entries(self) -> list[dict[str, object]]:
        """The SimulatePrincipalPolicy ContextEntries carrying every key of the context."""
        return [context_entry(key, value, self.key_type(key)) for key, value in self.values.items()]


def context_entry(key: str, value: ContextValue, kind: str) -> dict[str, object]:
    values = value if isinstance(value, list) else [value]
    return {
        "ContextKeyName": key,
        "ContextKeyType": kind,
        "ContextKeyValues": [_text(item) for item in values],
    }


def _text(value: ContextScalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def org_path(organization_id: str, account: Account) -> str | None:
    """aws:PrincipalOrgPaths / aws:ResourceOrgPaths of an account:
    o-xxx/r-xxx/ou-xxx/.../ (root first, the account's parent last, trailing slash)."""
    if not organization_id or not account.ou_path:
        return None
    return "/".join([organization_id, *(unit.id for unit in account.ou_path)]) + "/"


def scan_timestamp(when: datetime | None) -> datetime:
    """The scan time every request of an account uses, to the second, in UTC."""
    moment = when or datetime.now(UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Question:
    """The facts one check's context is built from."""

    organization: Organization
    account: Account  # the role's account
    role: Role
    region: str
    action: str
    resource: str
    profile_context: dict[str, object]  # the requirement's rendered context
    key: KmsKey | None = None
    scanned_at: datetime | None = None


def build_context(question: Question) -> RequestContext:
    """Every key AWS would put in this request that vaultscan can know."""
    shared = _shared_keys(
        question.organization,
        question.account,
        question.role,
        question.region,
        question.scanned_at,
    )
    requested = _requested_keys(
        _resource_keys(question.organization, question.resource, question.key),
        question.action,
        question.account.id,
        question.profile_context,
    )
    return _joined(_Piece.of(shared), _Piece.of(requested))


def _shared_keys(
    organization: Organization,
    account: Account,
    role: Role,
    region: str,
    scanned_at: datetime | None,
) -> dict[str, ContextValue]:
    """The keys every request of one role in one region carries: its principal and the
    request's region and time."""
    values = _principal_keys(organization, account, role)
    values.update(_request_keys(region, scanned_at))
    return values


def _requested_keys(
    resource_keys: dict[str, ContextValue],
    action: str,
    account_id: str,
    profile_context: dict[str, object],
) -> dict[str, ContextValue]:
    """The keys of one required action on its resource, the same for every role of the
    account in a region: the resource's, the KMS ones, the profile's own."""
    values = dict(resource_keys)
    values.update(_kms_keys(action, account_id))
    # the profile's own keys (kms:ViaService, kms:GrantIsForAWSResource, ...) are data a
    # person wrote for this requirement: they win over derived values
    for key, value in profile_context.items():
        values[key] = value  # type: ignore[assignment]
    # only the profile's keys can name kms:ViaService: the derived ones never do
    values.update(_service_keys(profile_context))  # type: ignore[arg-type]
    return values


@dataclass(frozen=True)
class _Piece:
    """Keys that several requests carry (a role's in a region, a required action's),
    with what each request needs of them worked out once."""

    values: dict[str, ContextValue]
    engine: ContextPart  # the same keys as the engine's conditions read them
    userid: bool  # carries aws:userid, whose session name stands for an unknown one
    ruled_out: frozenset[str]  # the ABSENT_BY_RULE keys it carries (lower-case)

    @classmethod
    def of(cls, values: dict[str, ContextValue]) -> _Piece:
        engine = normalize_context(values)  # type: ignore[arg-type]
        # the engine's keys are the lower-case ones
        ruled_out = frozenset(engine.values.keys() & ABSENT_BY_RULE.keys())
        return cls(values, engine, "aws:userid" in values, ruled_out)


_USERID = frozenset({"aws:userid"})
_NONE: frozenset[str] = frozenset()


def _joined(shared: _Piece, requested: _Piece) -> RequestContext:
    """One request's context: the shared keys, then the requested ones (which win, in
    the order and with the values that adding them one by one gives)."""
    values = {**shared.values, **requested.values}
    representative = _USERID if shared.userid or requested.userid else _NONE
    ruled_out = shared.ruled_out | requested.ruled_out if requested.ruled_out else shared.ruled_out
    absent = _absent_by_rule(ruled_out)
    return RequestContext(values, representative, dict(absent), (shared.engine, requested.engine))


@lru_cache(maxsize=1024)
def _absent_by_rule(present: frozenset[str]) -> dict[str, str]:
    """The ABSENT_BY_RULE keys a request does not carry, given those it carries (the
    same few sets recur for every check; callers copy the answer)."""
    return {key: why for key, why in ABSENT_BY_RULE.items() if key not in present}


def _principal_keys(
    organization: Organization, account: Account, role: Role
) -> dict[str, ContextValue]:
    values: dict[str, ContextValue] = {
        # the role ARN with its path, also when the caller is a session of the role
        "aws:PrincipalArn": role.arn,
        "aws:PrincipalAccount": account.id,
        "aws:PrincipalType": "AssumedRole",
        "aws:PrincipalIsAWSService": False,
    }
    if organization.id and organization.member(account.id) is not None:
        values["aws:PrincipalOrgID"] = organization.id
        path = org_path(organization.id, account)
        if path:
            values["aws:PrincipalOrgPaths"] = [path]
    for tag, tag_value in sorted(role.tags.items()):
        values[f"aws:PrincipalTag/{tag}"] = tag_value
    if role.role_id:
        values["aws:userid"] = f"{role.role_id}:{REPRESENTATIVE_SESSION}"
    return values


def _request_keys(region: str, scanned_at: datetime | None) -> dict[str, ContextValue]:
    current, epoch = _time_keys(scanned_at)
    return {
        "aws:RequestedRegion": region,
        # AWS APIs are called over TLS (SDKs and AWS services use HTTPS endpoints)
        "aws:SecureTransport": True,
        "aws:CurrentTime": current,
        "aws:EpochTime": epoch,
    }


@lru_cache(maxsize=64)
def _time_keys_at(moment: datetime) -> tuple[str, int]:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), int(moment.timestamp())


def _time_keys(when: datetime | None) -> tuple[str, int]:
    """aws:CurrentTime and aws:EpochTime of the scan (formatted once per scan time)."""
    return _time_keys_at(scan_timestamp(when))


def _on_key(resource: str, key: KmsKey | None) -> KmsKey | None:
    """The key when the request's resource is that key."""
    return key if key is not None and resource == key.arn else None


def resource_owner(resource: str, key: KmsKey | None) -> str | None:
    """The account that owns the request's resource (None for '*')."""
    on_key = _on_key(resource, key)
    if on_key is not None:
        return on_key.owner_account
    parts = resource.split(":")
    if resource == "*" or len(parts) < 6:
        return None
    return parts[4] or None


def _resource_keys(
    organization: Organization, resource: str, key: KmsKey | None
) -> dict[str, ContextValue]:
    owner = resource_owner(resource, key)
    if owner is None:
        return {}
    values: dict[str, ContextValue] = {"aws:ResourceAccount": owner}
    owner_account = organization.member(owner)
    if organization.id and owner_account is not None:
        values["aws:ResourceOrgID"] = organization.id
        path = org_path(organization.id, owner_account)
        if path:
            values["aws:ResourceOrgPaths"] = [path]
    on_key = _on_key(resource, key)
    if on_key is not None:
        for tag, tag_value in sorted(on_key.tags.items()):
            values[f"aws:ResourceTag/{tag}"] = tag_value
    return values


def _kms_keys(action: str, account_id: str) -> dict[str, ContextValue]:
    if action[:4].lower() != "kms:":
        return {}
    # "the AWS account ID of the principal that is requesting the operation": every
    # AWS KMS key operation (AWS KMS condition keys, kms:CallerAccount)
    return {"kms:CallerAccount": account_id}


def via_service_principal(via_service: str) -> str | None:
    """backup.eu-west-1.amazonaws.com -> backup.amazonaws.com (the service principal)."""
    parts = via_service.split(".")
    if len(parts) < 3:
        return None
    return f"{parts[0]}.{'.'.join(parts[2:])}"


def _service_keys(values: dict[str, ContextValue]) -> dict[str, ContextValue]:
    """Forward access sessions: a request a service makes with the caller's identity
    (kms:ViaService says which) carries aws:ViaAWSService = true; aws:CalledVia and its
    first/last only for the services documented to set them."""
    via = next((value for key, value in values.items() if key.lower() == "kms:viaservice"), None)
    return _service_keys_via(via if isinstance(via, str) else None)


@lru_cache(maxsize=256)
def _service_keys_via(via: str | None) -> dict[str, ContextValue]:
    """The forward-access keys for one kms:ViaService value (callers only read them)."""
    if via is None:
        return {"aws:ViaAWSService": False}
    out: dict[str, ContextValue] = {"aws:ViaAWSService": True}
    principal = via_service_principal(via)
    if principal in CALLED_VIA_SERVICES:
        out.update(
            {
                "aws:CalledVia": [principal],
                "aws:CalledViaFirst": principal,
                "aws:CalledViaLast": principal,
            }
        )
    return out


def question_for(
    *,
    organization: Organization,
    account: Account,
    role: Role,
    region: str,
    requirement: Requirement,
    key: KmsKey | None,
    partition: str,
    scanned_at: datetime | None,
) -> tuple[str, RequestContext]:
    """The resource and the whole context of one required action: the single place a
    check's request is put together, for the engine and the simulator alike."""
    resource, profile_context = requirement.render(
        partition, region, account.id, key.arn if key else None
    )
    question = Question(
        organization=organization,
        account=account,
        role=role,
        region=region,
        action=requirement.action,
        resource=resource,
        profile_context=profile_context,
        key=key,
        scanned_at=scanned_at,
    )
    return resource, build_context(question)


class ContextBuilder:
    """The request contexts of one account's checks, as `question_for` builds them, put
    together from pieces several checks share, each built once: the principal and
    request keys per (role, region), and per (requirement, region, key) the rendered
    resource with the keys of the request on it. A scan asks seven requirements of
    every role, region and key, so a check only joins two pieces."""

    def __init__(
        self,
        organization: Organization,
        account: Account,
        partition: str,
        scanned_at: datetime | None,
    ):
        self.organization = organization
        self.account = account
        self.partition = partition
        self.scanned_at = scanned_at
        # keyed by the role or requirement object, kept so that its id is not reused
        self._shared: dict[tuple[int, str], tuple[Role, _Piece]] = {}
        self._requested: dict[tuple[int, str, str | None], tuple[Requirement, str, _Piece]] = {}
        # per (resource, key ARN when the resource is the key)
        self._resources: dict[tuple[str, str | None], dict[str, ContextValue]] = {}

    def question_for(
        self, role: Role, region: str, requirement: Requirement, key: KmsKey | None
    ) -> tuple[str, RequestContext]:
        """`question_for(...)` for this account: the same resource and context."""
        shared = self._shared.get((id(role), region))
        if shared is None or shared[0] is not role:
            shared = self._shared_for(role, region)
        requested = self._requested.get((id(requirement), region, key.arn if key else None))
        if requested is None or requested[0] is not requirement:
            requested = self._requested_for(requirement, region, key)
        return requested[1], _joined(shared[1], requested[2])

    def _shared_for(self, role: Role, region: str) -> tuple[Role, _Piece]:
        values = _shared_keys(self.organization, self.account, role, region, self.scanned_at)
        cached = self._shared[(id(role), region)] = (role, _Piece.of(values))
        return cached

    def _requested_for(
        self, requirement: Requirement, region: str, key: KmsKey | None
    ) -> tuple[Requirement, str, _Piece]:
        key_arn = key.arn if key else None
        resource, profile_context = requirement.render(
            self.partition, region, self.account.id, key_arn
        )
        on_key = _on_key(resource, key)
        resource_cache = (resource, on_key.arn if on_key else None)
        resource_keys = self._resources.get(resource_cache)
        if resource_keys is None:
            resource_keys = _resource_keys(self.organization, resource, key)
            self._resources[resource_cache] = resource_keys
        values = _requested_keys(
            resource_keys, requirement.action, self.account.id, profile_context
        )
        cached = (requirement, resource, _Piece.of(values))
        self._requested[(id(requirement), region, key_arn)] = cached
        return cached
