"""The compiled policies of one request, each with the name explanations use, and the
candidate statements (Action and Resource match) per layer, cached per request shape."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from scanner.policy.context import Request
from scanner.policy.grammar import CompiledPolicy, CompiledStatement
from scanner.policy.result import (
    ConditionRef,
    LevelResult,
    StatementMiss,
    StatementRef,
    statement_ref,
)
from scanner.policy.vocabulary import Decision, MissReason


@dataclass(frozen=True)
class NamedCompiled:
    name: str
    policy: CompiledPolicy
    # one StatementRef per statement, by index: built once, shared by every answer
    refs: tuple[StatementRef, ...] = field(default=(), compare=False, repr=False)
    # (statement index, condition index, principal kind) -> the StatementMiss saying so
    _misses: dict[tuple[int, int, Any], StatementMiss] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        refs = tuple(
            statement_ref(self.name, s.sid, s.index, s.effect) for s in self.policy.statements
        )
        object.__setattr__(self, "refs", refs)

    def ref(self, statement: CompiledStatement) -> StatementRef:
        return self.refs[statement.index]

    def miss(self, statement: CompiledStatement, condition: int, kind: Any) -> StatementMiss:
        """Why `statement` did not apply: its principal (condition -1) or that condition."""
        key = (statement.index, condition, kind)
        known = self._misses.get(key)
        if known is None:
            ref = self.refs[statement.index]
            if condition < 0:
                known = StatementMiss(ref, MissReason.PRINCIPAL)
            else:
                compiled = statement.conditions[condition]
                written = ConditionRef(
                    compiled.operator, compiled.written_key or compiled.key, compiled.values
                )
                known = StatementMiss(ref, MissReason.CONDITION, written, kind)
            self._misses[key] = known
        return known


Pair = tuple[NamedCompiled, CompiledStatement]


@dataclass(frozen=True)
class PolicySet:
    """Compiled policies of a request, each with the name explanations use."""

    scps: tuple[tuple[NamedCompiled, ...], ...]
    rcps: tuple[tuple[NamedCompiled, ...], ...]
    permissions_boundary: NamedCompiled | None
    identity: tuple[NamedCompiled, ...]
    resource_policy: NamedCompiled | None
    # (layer part, action, resource) -> statements whose action and resource match,
    # split into those that need no context and those whose resource does
    _candidates: dict[tuple[Any, str, str], tuple[tuple[Pair, ...], tuple[Pair, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    _fixed_levels: dict[tuple[int, str, str], LevelResult | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def fixed_level(self, number: int, request: Request) -> LevelResult | None:
        """The result of SCP level `number` when none of its candidate statements reads
        the request context (no conditions, no variables in Resource): it then depends on
        the action and resource alone. None when the level must be evaluated."""
        key = (number, request.action, request.resource)
        if key in self._fixed_levels:
            return self._fixed_levels[key]
        pairs = self.candidates(("scp", number), self.scps[number], request)
        needs_context = self._candidates[(("scp", number), request.action, request.resource)][1]
        fixed = None
        static = not needs_context and all(not s.conditions for _n, s in pairs)
        if static:
            allowing = tuple(n.refs[s.index] for n, s in pairs if s.effect == "Allow")
            denying = tuple(n.refs[s.index] for n, s in pairs if s.effect != "Allow")
            decision = (
                Decision.EXPLICIT_DENY
                if denying
                else Decision.ALLOWED
                if allowing
                else Decision.IMPLICIT_DENY
            )
            fixed = LevelResult(number, decision, allowing, denying)
        if len(self._fixed_levels) >= 4096:
            self._fixed_levels.clear()
        self._fixed_levels[key] = fixed
        return fixed

    def candidates(
        self, part: Any, policies: Iterable[NamedCompiled], request: Request
    ) -> Iterable[Pair]:
        """Statements of `policies` whose Action and Resource match the request."""
        key = (part, request.action, request.resource)
        hit = self._candidates.get(key)
        if hit is None:
            static: list[Pair] = []
            dynamic: list[Pair] = []
            for named in policies:
                matched, needs_context = named.policy.split_candidates(
                    request.action, request.resource
                )
                static.extend((named, statement) for statement in matched)
                dynamic.extend((named, statement) for statement in needs_context)
            if len(self._candidates) >= 4096:
                self._candidates.clear()
            hit = (tuple(static), tuple(dynamic))
            self._candidates[key] = hit
        static_pairs, dynamic_pairs = hit
        if not dynamic_pairs:
            return static_pairs
        context = request.context
        matched = [p for p in dynamic_pairs if p[1].matches_resource(request.resource, context)]
        return (*static_pairs, *matched)
