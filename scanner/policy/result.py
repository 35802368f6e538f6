"""The engine's answer as data: per layer its decision and the statements that decided
it, per SCP/RCP level the same, for KMS keys and role trust policies whether the
resource's policy trusts the principal's account (and under which conditions), and the
statements whose Action and Resource matched but that did not apply, with why.

Notes (`LayerResult.note`) are sentences rendered from these fields for a person; no
code reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from scanner.policy.notes import layer_note
from scanner.policy.vocabulary import Decision, Layer, MissReason, Reason


@dataclass(frozen=True, slots=True)
class StatementRef:
    """One statement that decided a layer: enough for a person to find and fix it."""

    policy: str
    sid: str | None
    index: int
    effect: str

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "sid": self.sid, "index": self.index, "effect": self.effect}


@lru_cache(maxsize=65536)
def statement_ref(policy: str, sid: str | None, index: int, effect: str) -> StatementRef:
    return StatementRef(policy, sid, index, effect)


@dataclass(frozen=True, slots=True)
class ConditionRef:
    """One condition of a statement, as the policy writes it."""

    operator: str
    key: str
    values: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.operator} {self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {"operator": self.operator, "key": self.key, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class StatementMiss:
    """A statement whose Action and Resource match the request but which did not apply:
    its Principal does not name the caller, or one of its conditions is not met."""

    statement: StatementRef
    why: MissReason
    condition: ConditionRef | None = None  # the first condition not met
    principal_kind: str | None = None  # how its Principal names the caller, if it does

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"statement": self.statement.to_dict(), "why": str(self.why)}
        if self.condition is not None:
            out["condition"] = self.condition.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class LevelResult:
    """One level of the SCP or RCP path (0 is the root, the last is the account)."""

    index: int
    decision: Decision
    allowing: tuple[StatementRef, ...] = ()
    denying: tuple[StatementRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "decision": str(self.decision),
            "allowing": [ref.to_dict() for ref in self.allowing],
            "denying": [ref.to_dict() for ref in self.denying],
        }


@dataclass(frozen=True, slots=True)
class AccountTrust:
    """Does the resource's policy (a KMS key policy, a role trust policy) allow the
    principal's account, so that its IAM policies count?"""

    account: str
    trusted: bool
    statements: tuple[StatementRef, ...] = ()  # account statements that apply
    conditions: tuple[ConditionRef, ...] = ()  # the conditions those statements set
    unmet: tuple[StatementMiss, ...] = ()  # account statements whose conditions fail

    @property
    def conditional(self) -> bool:
        """The policy names the account, but only under conditions."""
        return bool(self.conditions or self.unmet)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "trusted": self.trusted,
            "statements": [ref.to_dict() for ref in self.statements],
            "conditions": [condition.to_dict() for condition in self.conditions],
            "unmet": [miss.to_dict() for miss in self.unmet],
        }


@dataclass(slots=True)
class LayerResult:
    layer: Layer
    decision: Decision
    statements: list[StatementRef] = field(default_factory=list)
    reason: Reason | None = None
    subject: str | None = None  # what the reason names: a service, an account
    levels: tuple[LevelResult, ...] = ()  # SCP/RCP layers only
    misses: tuple[StatementMiss, ...] = ()
    trust: AccountTrust | None = None  # key and trust policies only

    @property
    def note(self) -> str | None:
        return layer_note(self.reason, self.subject, self.levels, self.trust)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "layer": str(self.layer),
            "decision": str(self.decision),
            "statements": [ref.to_dict() for ref in self.statements],
        }
        note = self.note
        if note:
            out["note"] = note
        if self.reason is not None:
            out["reason"] = str(self.reason)
        if self.levels:
            out["levels"] = [level.to_dict() for level in self.levels]
        if self.misses:
            out["not_applied"] = [miss.to_dict() for miss in self.misses]
        return out

    def failing_levels(self) -> list[LevelResult]:
        """Levels that do not allow (SCP/RCP layers), root first."""
        return [level for level in self.levels if level.decision != Decision.ALLOWED]


@dataclass(slots=True)
class Evaluation:
    decision: Decision
    deciding_layer: Layer | None
    layers: list[LayerResult]

    def layer(self, name: str) -> LayerResult | None:
        return next((layer for layer in self.layers if layer.layer == name), None)

    @property
    def account_trust(self) -> AccountTrust | None:
        """For KMS keys and role trust policies: whether the policy trusts the account."""
        resource = self.layer(Layer.RESOURCE_POLICY)
        return resource.trust if resource is not None else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": str(self.decision),
            "deciding_layer": None if self.deciding_layer is None else str(self.deciding_layer),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        trust = self.account_trust
        if trust is not None:
            out["account_trust"] = trust.to_dict()
        return out
