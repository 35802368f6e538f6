"""Plain data handed from one scan stage to the next.

config -> discover -> collect -> decide -> record -> export. Only `collect` (scanner.aws)
talks to AWS and only `record` (storage) talks to the database; everything in between
works on these dataclasses, so it can be fed directly by tests and the sandbox.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# The engine's vocabulary, defined once in scanner.policy (which imports nothing of the
# scanner) and re-exported here for the stages that pass it on.
from scanner.policy.vocabulary import Decision as Decision
from scanner.policy.vocabulary import KeyManager as KeyManager
from scanner.policy.vocabulary import Layer as Layer
from scanner.vocabulary import AccountStatus, CheckStatus

PolicyDocument = dict[str, Any]
# how a sentence names each layer
LAYER_WORDS: dict[str, str] = {
    Layer.SCP: "SCP",
    Layer.RCP: "RCP",
    Layer.PERMISSIONS_BOUNDARY: "permissions boundary",
    Layer.IDENTITY: "identity policy",
    Layer.RESOURCE_POLICY: "key policy",
}


@dataclass(frozen=True)
class NamedPolicy:
    """A policy document plus the name a person would look for (ARN, policy id or name)."""

    name: str
    document: PolicyDocument


# --- discover -------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgUnit:
    id: str  # r-xxxx for the root, ou-xxxx-yyyyyyyy for an OU
    name: str


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    email: str = ""
    status: str = "ACTIVE"
    # root first, direct parent last; the account itself is not in it
    ou_path: tuple[OrgUnit, ...] = ()
    # the account's tags vaultscan reads (only report.owner_tag), key -> value
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def ou_path_ids(self) -> str:
        return "/".join(unit.id for unit in self.ou_path)

    @property
    def ou_path_names(self) -> str:
        return "/".join(unit.name for unit in self.ou_path)


@dataclass
class Organization:
    """The organization tree and the SCPs/RCPs attached to each target."""

    management_account_id: str | None
    accounts: list[Account]  # the accounts to scan
    # target id (root, OU or account id) -> policies attached to it, in attachment order
    scps: dict[str, list[NamedPolicy]] = field(default_factory=dict)
    rcps: dict[str, list[NamedPolicy]] = field(default_factory=dict)
    scps_enabled: bool = True
    rcps_enabled: bool = False
    id: str = ""  # o-xxxxxxxxxx: aws:PrincipalOrgID / aws:ResourceOrgID
    # every active account of the organization, scanned or not (a key may live in one
    # that is not scanned): account id -> account with its OU path
    members: dict[str, Account] = field(default_factory=dict)

    def member(self, account_id: str) -> Account | None:
        """The organization's account `account_id` (None: not in the organization)."""
        found = self.members.get(account_id)
        if found is not None:
            return found
        return next((account for account in self.accounts if account.id == account_id), None)

    def policy_path(self, account: Account, kind: Literal["scp", "rcp"]) -> list[list[NamedPolicy]]:
        """One list per level, root first and the account last (the scenario's shape).

        An empty outer list means the policy type is not enabled for the organization.
        The management account is never governed by SCPs or RCPs.
        """
        enabled = self.scps_enabled if kind == "scp" else self.rcps_enabled
        if not enabled or account.id == self.management_account_id:
            return []
        attached = self.scps if kind == "scp" else self.rcps
        targets = [unit.id for unit in account.ou_path] + [account.id]
        return [list(attached.get(target, [])) for target in targets]


# --- collect --------------------------------------------------------------------------


@dataclass
class Role:
    arn: str
    name: str
    path: str = "/"
    tags: dict[str, str] = field(default_factory=dict)
    role_id: str = ""  # AROA...: the first half of aws:userid
    inline_policies: list[NamedPolicy] = field(default_factory=list)
    managed_policies: list[NamedPolicy] = field(default_factory=list)
    permissions_boundary: NamedPolicy | None = None

    @property
    def identity_policies(self) -> list[NamedPolicy]:
        return [*self.inline_policies, *self.managed_policies]


@dataclass
class KmsKey:
    arn: str
    key_id: str
    region: str
    aliases: list[str] = field(default_factory=list)
    key_policy: PolicyDocument | None = None
    key_state: str = "Enabled"  # Enabled, Disabled, PendingDeletion, ...
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"
    key_manager: str = KeyManager.CUSTOMER  # DescribeKey's KeyManager: AWS or CUSTOMER
    deletion_date: datetime | None = None
    grants: list[dict[str, Any]] = field(default_factory=list)
    # why it is checked: "configured" (from config), "vault:<name>" (used by a vault)
    sources: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # aws:ResourceTag/<key>
    # why this key was chosen among the configured fallbacks (keys.default as a list)
    choice: str = ""

    @property
    def owner_account(self) -> str:
        """The account that owns the key (its ARN's account field)."""
        parts = self.arn.split(":")
        return parts[4] if len(parts) > 4 else ""


@dataclass(frozen=True)
class SimulatorAnswer:
    """What an IAM policy simulator said for one (action, resource)."""

    action: str
    resource: str
    decision: Decision
    matched_statements: tuple[str, ...] = ()
    allowed_by_organizations: bool | None = None
    allowed_by_boundary: bool | None = None
    source: Literal["aws", "sandbox-engine"] = "aws"
    # keys the simulator's policies read but the request did not carry
    # (SimulatePrincipalPolicy MissingContextValues): the answer rests on their absence
    missing_context: tuple[str, ...] = ()


@dataclass
class AccountCollection:
    """Everything fetched for one member account."""

    account: Account
    roles: list[Role] = field(default_factory=list)
    keys: dict[str, list[KmsKey]] = field(default_factory=dict)  # region -> keys
    # (role arn, region) -> one answer per required action
    simulations: dict[tuple[str, str], list[SimulatorAnswer]] = field(default_factory=dict)
    error: str | None = None  # set when the account could not be read at all
    api_calls: Counter[str] = field(default_factory=Counter)  # "iam:ListRoles" -> count
    # when the account was read: aws:CurrentTime / aws:EpochTime of every request, the
    # same for the engine and the simulator
    scanned_at: datetime | None = None
    # sha256 of everything its verdicts follow from (scanner.incremental); None when
    # they also follow from the time of the scan
    evidence_fingerprint: str | None = None
    # an incremental scan found the evidence equal to that of this run's read: the
    # simulator was not asked and nothing is decided, that run's verdicts stand
    unchanged_since_run: int | None = None


# --- decide ---------------------------------------------------------------------------

KEY_STATE_CHECK = "kms:KeyState"  # can the key encrypt a vault at all
ROLE_PRESENT_CHECK = "iam:DesignatedRole"  # does the account have a designated role


@dataclass(frozen=True)
class CheckId:
    """What one check verifies: a required action (or KEY_STATE_CHECK,
    ROLE_PRESENT_CHECK), and for checks of a key other than the configured one, which
    key (its first alias or its id), so every check stays unique within a region.

    Stored as text, `kms:CreateGrant` or `kms:CreateGrant (alias/vault-key)`: `str()`
    writes that form and `parse()` reads it back."""

    name: str
    key: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.key})" if self.key else self.name

    @classmethod
    def parse(cls, text: str) -> CheckId:
        name, sep, rest = text.partition(" (")
        if sep and rest.endswith(")"):
            return cls(name, rest[:-1])
        return cls(text)

    @property
    def is_key_state(self) -> bool:
        return self.name == KEY_STATE_CHECK


def is_key_state_check(check: str) -> bool:
    """`kms:KeyState` for the configured key, `kms:KeyState (alias/x)` for a vault's key."""
    return CheckId.parse(check).is_key_state


@dataclass(frozen=True)
class Fix:
    """The minimal change that turns one failed check into a pass. `statement` is always
    something to add (or the corrected statement to put in place of
    `offending_statement`)."""

    kind: str
    target: str | None  # what to change: a role, a policy (id or ARN), a key
    summary: str
    statement: dict[str, Any] | None = None
    commands: Sequence[str] = ()
    offending_statement: dict[str, Any] | None = None  # the deny to edit, if any

    def __post_init__(self) -> None:
        object.__setattr__(self, "commands", tuple(self.commands))

    def to_dict(self) -> dict[str, Any]:
        """The form stored in check_results.remediation (JSON)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "target": self.target,
            "summary": self.summary,
            "statement": self.statement,
            "commands": list(self.commands),
        }
        if self.offending_statement is not None:
            out["offending_statement"] = self.offending_statement
        return out


@dataclass
class CheckResult:
    """One verdict: can this role do this (action, resource) in this account and region?"""

    account_id: str
    region: str
    role_arn: str
    check: str  # str(CheckId): "kms:CreateGrant", "kms:KeyState (alias/x)"
    resource: str
    status: CheckStatus
    decision: Decision | None = None  # the engine's final answer
    deciding_layer: Layer | None = None
    policy: str | None = None  # name of the policy that decided a failure
    statement: str | None = None  # Sid, or "#index" when it has none
    simulator_decision: Decision | None = None
    simulator_source: str | None = None
    disagreement: bool = False
    message: str = ""
    # a Fix; results built from stored rows may carry its stored (dict) form
    remediation: Fix | dict[str, Any] | None = None
    scenario: dict[str, Any] | None = None  # replayable with `vaultscan explain`
    explanation: dict[str, Any] | None = None  # per-layer evaluation detail
    # confidence: condition keys vaultscan could not know that a statement deciding this
    # verdict reads (the verdict assumed them absent), and the keys AWS's simulator
    # reported missing (MissingContextValues)
    absent_keys: tuple[str, ...] = ()
    simulator_missing: tuple[str, ...] = ()

    @property
    def confidence(self) -> dict[str, Any]:
        """How sure the verdict is, as stored with its evidence."""
        return {
            "level": "assumed-absent-keys" if self.absent_keys else "full-context",
            "absent_keys": list(self.absent_keys),
            "simulator_missing_context": list(self.simulator_missing),
        }

    @property
    def key(self) -> str:
        return check_key(self.account_id, self.region, self.role_arn, self.check)

    @property
    def check_id(self) -> CheckId:
        return CheckId.parse(self.check)

    def verdict_fields(self) -> dict[str, Any]:
        """The verdict as stored in check_results and shown in result rows (region to
        remediation, in column order); the account, key and evidence are the caller's."""
        return {
            "region": self.region,
            "role_arn": self.role_arn,
            "check": self.check,
            "resource": self.resource,
            "status": self.status,
            "decision": self.decision,
            "deciding_layer": self.deciding_layer,
            "policy": self.policy,
            "statement": self.statement,
            "simulator_decision": self.simulator_decision,
            "simulator_source": self.simulator_source,
            "disagreement": self.disagreement,
            "message": self.message,
            "remediation": (
                self.remediation.to_dict()
                if isinstance(self.remediation, Fix)
                else self.remediation
            ),
        }


def fix_json(remediation: Fix | dict[str, Any] | None) -> dict[str, Any] | None:
    """A remediation in its stored (JSON) form."""
    return remediation.to_dict() if isinstance(remediation, Fix) else remediation


def check_key(account_id: str, region: str, role_arn: str, check: str) -> str:
    """The identity of a check across scans; drift compares results with equal keys."""
    return f"{account_id}|{region}|{role_arn}|{check}"


@dataclass
class AccountOutcome:
    account: Account
    status: AccountStatus
    error: str | None = None
    results: list[CheckResult] = field(default_factory=list)
    api_calls: Counter[str] = field(default_factory=Counter)
    evidence_fingerprint: str | None = None  # AccountCollection.evidence_fingerprint
    # unchanged since this run: its verdicts are carried into this one as they are
    carried_from_run: int | None = None
    # when carried verdicts were decided (the run that decided them started)
    decided_at: datetime | None = None


@dataclass
class ScanSummary:
    started_at: datetime
    finished_at: datetime | None
    outcomes: list[AccountOutcome]
    config_fingerprint: str = ""
    simulator_source: str = "aws"

    @property
    def results(self) -> list[CheckResult]:
        return [result for outcome in self.outcomes for result in outcome.results]
