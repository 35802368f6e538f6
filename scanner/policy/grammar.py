"""Policy documents -> compiled statements, validated against the IAM JSON grammar.

Compiling is the costly part, so compiled policies are cached: first by the document
object's identity (the scanner reuses the same dicts for every check), then by a hash of
its canonical JSON. Documents are treated as immutable once compiled.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.policy.arn import resource_matches
from scanner.policy.conditions import (
    CompiledCondition,
    ConditionValueError,
    compile_condition,
)
from scanner.policy.principal import PrincipalSpec, parse_principal
from scanner.policy.variables import Context, Part, has_variables, parse_template, resolve
from scanner.policy.wildcard import compile_glob

VARIABLES_VERSION = "2012-10-17"
VERSIONS = ("2012-10-17", "2008-10-17")
STATEMENT_KEYS = {
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
}
_CACHE_LIMIT = 4096
# Compiled policies kept, each way. A scan needs the documents every account shares (SCPs,
# AWS-managed and common policies) and those of the accounts in flight (at most 32 held,
# scanner.aws.sizing.MAX_HELD, a few documents each); more only kept finished accounts'
# documents and their compiled forms alive, about 45 KB each (4,096 of them: 185 MB of a
# 10,000-account scan's memory; benchmarks/README.md, "Memory").
COMPILED_LIMIT = 1024


class PolicyError(ValueError):
    """A document that does not follow the policy grammar; `path` points into it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class ResourcePattern:
    text: str
    template: tuple[Part, ...] | None  # the part after the fifth colon, when it has variables
    prefix: str = ""  # the text up to and including the fifth colon (with a template)

    def matches(self, resource: str, context: Context) -> bool:
        if self.template is None:
            return resource_matches(self.text, resource)
        tail = resolve(self.template, context)
        if tail is None:
            return False  # a variable with no value is null: the pattern matches nothing
        return resource_matches(self.prefix + tail, resource)


@dataclass(frozen=True)
class CompiledStatement:
    index: int
    sid: str | None
    effect: str  # "Allow" | "Deny"
    actions: tuple[Callable[[str], bool], ...]
    not_action: bool
    resources: tuple[ResourcePattern, ...]
    not_resource: bool
    principal: PrincipalSpec | None
    not_principal: bool
    conditions: tuple[CompiledCondition, ...]
    dynamic_resource: bool  # resource patterns need the request context

    def matches_action(self, action: str) -> bool:
        hit = any(matcher(action) for matcher in self.actions)
        return not hit if self.not_action else hit

    def matches_resource(self, resource: str, context: Context) -> bool:
        hit = any(pattern.matches(resource, context) for pattern in self.resources)
        return not hit if self.not_resource else hit


@dataclass
class CompiledPolicy:
    statements: tuple[CompiledStatement, ...]
    version: str | None
    document: dict[str, Any]
    # (action, resource) -> (statements matching both, statements whose resource needs
    # the context); filled lazily, so 10k checks of the same pair cost one lookup each.
    _candidates: dict[
        tuple[str, str], tuple[tuple[CompiledStatement, ...], tuple[CompiledStatement, ...]]
    ] = field(default_factory=dict, repr=False)

    def first_principal_statement(self) -> CompiledStatement | None:
        """The first statement with Principal/NotPrincipal (not allowed in every layer)."""
        return next((s for s in self.statements if s.principal is not None), None)

    def candidates(
        self, action: str, resource: str, context: Context
    ) -> Sequence[CompiledStatement]:
        """Statements whose Action/NotAction and Resource/NotResource match the request
        (conditions and principals are not checked here). `action` is lower-case."""
        static_hits, dynamic_hits = self.split_candidates(action, resource)
        if not dynamic_hits:
            return static_hits
        matched = [s for s in dynamic_hits if s.matches_resource(resource, context)]
        return sorted([*static_hits, *matched], key=lambda s: s.index)

    def split_candidates(
        self, action: str, resource: str
    ) -> tuple[tuple[CompiledStatement, ...], tuple[CompiledStatement, ...]]:
        """(statements matching action and resource, statements matching the action whose
        resource holds policy variables and so needs the request context)."""
        key = (action, resource)
        hit = self._candidates.get(key)
        if hit is None:
            static: list[CompiledStatement] = []
            dynamic: list[CompiledStatement] = []
            for statement in self.statements:
                if not statement.matches_action(action):
                    continue
                if statement.dynamic_resource:
                    dynamic.append(statement)
                elif statement.matches_resource(resource, {}):
                    static.append(statement)
            if len(self._candidates) >= _CACHE_LIMIT:
                self._candidates.clear()
            hit = (tuple(static), tuple(dynamic))
            self._candidates[key] = hit
        return hit


# --- cache ------------------------------------------------------------------------------

_by_identity: dict[int, tuple[dict[str, Any], CompiledPolicy]] = {}
_by_content: dict[str, CompiledPolicy] = {}
_cache_lock = threading.Lock()  # eviction reads the dict's first key: not atomic


def compile_policy(document: Any) -> CompiledPolicy:
    """The compiled form of `document`, from cache when seen before; PolicyError if bad."""
    if isinstance(document, dict):
        known = _by_identity.get(id(document))
        if known is not None and known[0] is document:
            return known[1]
    try:
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise PolicyError("", f"not a JSON document: {error}") from error
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    compiled = _by_content.get(digest)
    if compiled is None:
        compiled = _compile(document)
    _remember(_by_content, digest, compiled)  # again when known: now the most recent
    _remember(_by_identity, id(document), (document, compiled))
    return compiled


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Put `key` last in `cache`, dropping the oldest entry when it holds COMPILED_LIMIT:
    the documents every account shares stay, since each new copy of one refreshes it."""
    with _cache_lock:
        cache.pop(key, None)
        if len(cache) >= COMPILED_LIMIT:
            del cache[next(iter(cache))]
        cache[key] = value


# --- compiling --------------------------------------------------------------------------


def _compile(document: Any) -> CompiledPolicy:
    if not isinstance(document, dict):
        raise PolicyError("", "a policy document must be a JSON object")
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        raise PolicyError(
            sorted(unknown)[0], "unknown policy element (expected Version, Id, Statement)"
        )
    version = document.get("Version")
    if version is not None and version not in VERSIONS:
        raise PolicyError("Version", f"must be one of {VERSIONS}, got {version!r}")
    if "Statement" not in document:
        raise PolicyError("Statement", "missing")
    raw = document["Statement"]
    if isinstance(raw, dict):
        items, path_of = [raw], (lambda _i: "Statement")
    elif isinstance(raw, list):
        items, path_of = raw, (lambda i: f"Statement[{i}]")
    else:
        raise PolicyError("Statement", "must be an object or a list of objects")
    variables = version == VARIABLES_VERSION
    statements = tuple(
        _compile_statement(item, index, path_of(index), variables)
        for index, item in enumerate(items)
    )
    return CompiledPolicy(statements, version, document)


def _compile_statement(raw: Any, index: int, path: str, variables: bool) -> CompiledStatement:
    if not isinstance(raw, dict):
        raise PolicyError(path, "a statement must be a JSON object")
    if not raw:
        raise PolicyError(path, "empty statement")
    unknown = set(raw) - STATEMENT_KEYS
    if unknown:
        name = sorted(unknown)[0]
        raise PolicyError(f"{path}.{name}", "unknown statement element")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError(f"{path}.Sid", "must be a string")
    effect = raw.get("Effect")
    if effect is None:
        raise PolicyError(f"{path}.Effect", "missing (use Allow or Deny)")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{path}.Effect", f"must be Allow or Deny, got {effect!r}")

    action_key = _exactly_one(raw, path, "Action", "NotAction")
    actions = tuple(
        compile_glob(a, ignore_case=True)
        for a in _strings(raw[action_key], f"{path}.{action_key}", _check_action)
    )
    if "Resource" not in raw and "NotResource" not in raw:
        # "If the required Resource element is missing from a key policy statement, the
        # policy statement has no effect" (AWS KMS: Key policy elements): a statement
        # without Resource matches no resource.
        resource_key, resources = "Resource", ()
    else:
        resource_key = _exactly_one(raw, path, "Resource", "NotResource")
        resources = tuple(
            _resource_pattern(text, variables)
            for text in _strings(raw[resource_key], f"{path}.{resource_key}")
        )

    principal = None
    not_principal = False
    if "Principal" in raw and "NotPrincipal" in raw:
        raise PolicyError(f"{path}.NotPrincipal", "use Principal or NotPrincipal, not both")
    for key in ("Principal", "NotPrincipal"):
        if key in raw:
            try:
                principal = parse_principal(raw[key])
            except ValueError as error:
                raise PolicyError(f"{path}.{key}", str(error)) from error
            not_principal = key == "NotPrincipal"
    if not_principal and effect == "Allow":
        raise PolicyError(f"{path}.NotPrincipal", "NotPrincipal is only supported with Deny")

    conditions = _compile_conditions(raw.get("Condition"), f"{path}.Condition", variables)
    return CompiledStatement(
        index=index,
        sid=sid,
        effect=effect,
        actions=actions,
        not_action=action_key == "NotAction",
        resources=resources,
        not_resource=resource_key == "NotResource",
        principal=principal,
        not_principal=not_principal,
        conditions=conditions,
        dynamic_resource=any(p.template is not None for p in resources),
    )


def _exactly_one(raw: dict[str, Any], path: str, positive: str, negative: str) -> str:
    if positive in raw and negative in raw:
        raise PolicyError(f"{path}.{negative}", f"use {positive} or {negative}, not both")
    if positive in raw:
        return positive
    if negative in raw:
        return negative
    raise PolicyError(f"{path}.{positive}", f"missing ({positive} or {negative} is required)")


def _strings(value: Any, path: str, check: Callable[[str], None] | None = None) -> list[str]:
    listed = [value] if isinstance(value, str) else value
    if not isinstance(listed, list) or not listed:
        raise PolicyError(path, "must be a string or a non-empty list of strings")
    for position, item in enumerate(listed):
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{path}[{position}]", "must be a non-empty string")
        if check is not None:
            try:
                check(item)
            except ValueError as error:
                raise PolicyError(f"{path}[{position}]", str(error)) from error
    return listed


def _check_action(action: str) -> None:
    if action != "*" and ":" not in action:
        raise ValueError(f"{action!r} is not an action (expected service:Name or *)")


def _resource_pattern(text: str, variables: bool) -> ResourcePattern:
    # Variables are only allowed in the resource part, after the fifth colon.
    if variables and has_variables(text):
        parts = text.split(":", 5)
        if len(parts) == 6:
            prefix = ":".join(parts[:5]) + ":"
            return ResourcePattern(text, parse_template(parts[5]), prefix)
        return ResourcePattern(text, parse_template(text), "")
    return ResourcePattern(text, None)


def _compile_conditions(raw: Any, path: str, variables: bool) -> tuple[CompiledCondition, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise PolicyError(path, "must be an object of operator -> {key: value(s)}")
    compiled: list[CompiledCondition] = []
    for operator, block in raw.items():
        where = f"{path}.{operator}"
        if not isinstance(block, dict) or not block:
            raise PolicyError(where, "must be a non-empty object of condition key -> value(s)")
        for key, value in block.items():
            values = _condition_values(value, f"{where}.{key}")
            try:
                compiled.append(compile_condition(operator, key, values, variables))
            except ConditionValueError as error:
                raise PolicyError(f"{where}.{key}", str(error)) from error
            except ValueError as error:
                raise PolicyError(where, str(error)) from error
    return tuple(compiled)


def _condition_values(value: Any, path: str) -> tuple[str, ...]:
    listed = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in listed:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, (str, int, float)):
            out.append(str(item))
        else:
            raise PolicyError(path, "condition values must be strings, numbers or booleans")
    return tuple(out)
