"""Authorization scenarios (the format of spec/authz-scenario.md): validation, loading
from files and folders, and the round trip back to JSON."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.bounded_input import InputError, load_json, read_text
from scanner.policy.arn import arn_account, split_arn
from scanner.policy.authorizers import authorizer_for
from scanner.policy.context import ContextPart, ContextValue, Request, build_request
from scanner.policy.grammar import CompiledPolicy, CompiledStatement, PolicyError, compile_policy
from scanner.policy.policyset import NamedCompiled, PolicySet
from scanner.policy.vocabulary import LAYER_ORDER, Decision, KeyManager

DECISIONS = tuple(str(decision) for decision in Decision)
KEY_MANAGERS = tuple(str(manager) for manager in KeyManager)
TOP_LEVEL_KEYS = {
    "name",
    "source",
    "explanation",
    "request",
    "policies",
    "expected",
    "deciding_layer",
    "policy_names",
}
REQUEST_KEYS = {
    "principal_arn",
    "principal_account",
    "action",
    "resource",
    "resource_account",
    "context",
    "key_manager",
}
POLICY_KEYS = ("scps", "rcps", "permissions_boundary", "identity", "resource_policy")
_UNSET = object()


class ScenarioError(ValueError):
    """A scenario that cannot be answered: where it came from, which field, and why."""

    def __init__(self, origin: str, field: str, message: str) -> None:
        where = f"{origin}: {field}" if field else origin
        super().__init__(f"{where}: {message}")
        self.origin = origin
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "field": self.field, "error": self.message}


Document = dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    principal_arn: str
    action: str
    resource: str
    principal_account: str
    resource_account: str
    context: dict[str, ContextValue] = field(default_factory=dict)
    scps: tuple[tuple[Document, ...], ...] = ()
    rcps: tuple[tuple[Document, ...], ...] = ()
    permissions_boundary: Document | None = None
    identity: tuple[Document, ...] = ()
    resource_policy: Document | None = None
    name: str | None = None
    source: str | None = None
    explanation: str | None = None
    expected: str | None = None
    expected_deciding_layer: str | None = None
    states_deciding_layer: bool = False  # "deciding_layer" was given (possibly null)
    policy_names: dict[str, Any] | None = None
    # a KMS key's KeyManager ("AWS" or "CUSTOMER"); None: not given, a customer key
    key_manager: str | None = None
    # given in the input, kept so to_dict() reproduces it
    gave_principal_account: bool = True
    gave_resource_account: bool = True
    origin: str = field(default="<scenario>", compare=False)
    _compiled: list[PolicySet] = field(default_factory=list, compare=False, repr=False)
    _request: list[Request] = field(default_factory=list, compare=False, repr=False)
    # `context` normalized in pieces shared with other scenarios (see with_request)
    _context_parts: tuple[ContextPart, ...] = field(
        default=(), init=False, compare=False, repr=False
    )

    # --- building ----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, *, origin: str = "<scenario>") -> Scenario:
        """Validate `data` (the spec's input object) and compile its policies once.
        Raises ScenarioError naming the field at fault."""
        return _parse(data, origin)

    def policy_set(self) -> PolicySet:
        """The compiled policies, compiled on first use (policy documents are cached)."""
        if not self._compiled:
            self._compiled.append(_cached_policy_set(self))
        return self._compiled[0]

    def request(self) -> Request:
        """The request with its derived context (built once: a scenario never changes)."""
        if not self._request:
            self._request.append(self._build_request())
        return self._request[0]

    def _build_request(self) -> Request:
        return build_request(
            self.principal_arn,
            self.principal_account,
            self.action,
            self.resource,
            self.resource_account,
            self.context,
            self.permissions_boundary is not None,
            self.key_manager or KeyManager.CUSTOMER,
            self._context_parts,
        )

    def with_request(
        self,
        *,
        action: str,
        resource: str,
        resource_account: str,
        context: dict[str, ContextValue],
        name: str | None = None,
        context_parts: tuple[ContextPart, ...] = (),
    ) -> Scenario:
        """The same policies asked another question. The compiled policies are shared
        when the same service authorizer reads them (the scanner asks seven questions of
        one role's policies). `context_parts`, when given, are `context` already
        normalized in pieces (`scanner.policy.context.normalize_context`), in order:
        merged they must hold exactly `context`'s keys and values."""
        same = authorizer_for(action, resource) is authorizer_for(self.action, self.resource)
        # a copy of the frozen dataclass with the request's fields changed: the fields are
        # plain values already validated, so skip replace()'s per-field __init__ checks
        new = object.__new__(Scenario)
        fields = new.__dict__
        fields.update(self.__dict__)
        fields["action"] = action
        fields["resource"] = resource
        fields["resource_account"] = resource_account
        fields["gave_resource_account"] = resource != "*"
        fields["context"] = context
        fields["name"] = name
        fields["_compiled"] = self._compiled if same else []
        fields["_request"] = []
        fields["_context_parts"] = context_parts
        return new

    # --- output ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The spec's input object: `Scenario.from_dict(s.to_dict())` equals `s`."""
        out: dict[str, Any] = {}
        for key in ("name", "source", "explanation"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        request: dict[str, Any] = {"principal_arn": self.principal_arn}
        if self.gave_principal_account:
            request["principal_account"] = self.principal_account
        request["action"] = self.action
        request["resource"] = self.resource
        if self.gave_resource_account:
            request["resource_account"] = self.resource_account
        request["context"] = dict(self.context)
        if self.key_manager is not None:
            request["key_manager"] = self.key_manager
        out["request"] = request
        out["policies"] = {
            "scps": [list(level) for level in self.scps],
            "rcps": [list(level) for level in self.rcps],
            "permissions_boundary": self.permissions_boundary,
            "identity": list(self.identity),
            "resource_policy": self.resource_policy,
        }
        if self.policy_names is not None:
            out["policy_names"] = self.policy_names
        if self.expected is not None:
            out["expected"] = self.expected
        if self.states_deciding_layer:
            out["deciding_layer"] = self.expected_deciding_layer
        return out


# --- parsing ------------------------------------------------------------------------------


Fail = Callable[[str, str], ScenarioError]


def _parse(data: Any, origin: str) -> Scenario:
    def fail(where: str, message: str) -> ScenarioError:
        return ScenarioError(origin, where, message)

    if not isinstance(data, dict):
        raise fail("", "a scenario must be a JSON object")
    _known(data, TOP_LEVEL_KEYS, "", fail)
    for key in ("name", "source", "explanation"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise fail(key, "must be a string")
    scenario = Scenario(
        **_request_fields(data.get("request"), fail),
        **_policy_fields(data.get("policies"), fail),
        **_answer_fields(data, fail),
        name=data.get("name"),
        source=data.get("source"),
        explanation=data.get("explanation"),
        origin=origin,
    )
    scenario.policy_set()  # compile now: grammar errors belong to reading the scenario
    return scenario


def _known(given: dict[str, Any], known: Iterable[str], where: str, fail: Fail) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        field_path = f"{where}.{unknown[0]}" if where else unknown[0]
        expected = sorted(known) if where != "policies" else list(known)
        prefix = "expected one of " if not where else "expected "
        raise fail(field_path, f"unknown field; {prefix}{expected}")


def _request_fields(request: Any, fail: Fail) -> dict[str, Any]:
    if not isinstance(request, dict):
        raise fail("request", "missing or not an object")
    _known(request, REQUEST_KEYS, "request", fail)
    principal_arn = _required_string(request, "principal_arn", fail)
    if split_arn(principal_arn) is None:
        raise fail("request.principal_arn", f"{principal_arn!r} is not an ARN")
    action = _required_string(request, "action", fail)
    if ":" not in action or "*" in action or "?" in action:
        raise fail("request.action", f"{action!r} is not an action such as kms:CreateGrant")
    resource = _required_string(request, "resource", fail)
    principal_account = _account(request, "principal_account", arn_account(principal_arn), fail)
    owner = principal_account if resource == "*" else arn_account(resource)
    key_manager = request.get("key_manager")
    if key_manager is not None and key_manager not in KEY_MANAGERS:
        raise fail("request.key_manager", f"must be one of {KEY_MANAGERS}, got {key_manager!r}")
    return {
        "principal_arn": principal_arn,
        "action": action,
        "resource": resource,
        "principal_account": principal_account,
        "resource_account": _account(request, "resource_account", owner, fail),
        "context": _context(request.get("context", {}), fail),
        "key_manager": key_manager,
        "gave_principal_account": "principal_account" in request,
        "gave_resource_account": "resource_account" in request,
    }


def _policy_fields(policies: Any, fail: Fail) -> dict[str, Any]:
    if not isinstance(policies, dict):
        raise fail("policies", "missing or not an object")
    _known(policies, POLICY_KEYS, "policies", fail)
    # null stands for an absent layer, like an empty list
    identity_raw = _list_or_empty(policies.get("identity"))
    if not isinstance(identity_raw, list):
        raise fail("policies.identity", "must be a list of policy documents")
    return {
        "scps": _levels(_list_or_empty(policies.get("scps")), "policies.scps", fail),
        "rcps": _levels(_list_or_empty(policies.get("rcps")), "policies.rcps", fail),
        "permissions_boundary": _optional_document(
            policies.get("permissions_boundary"), "policies.permissions_boundary", fail
        ),
        "identity": _documents(identity_raw, "policies.identity", fail),
        "resource_policy": _optional_document(
            policies.get("resource_policy"), "policies.resource_policy", fail
        ),
    }


def _answer_fields(data: dict[str, Any], fail: Fail) -> dict[str, Any]:
    expected = data.get("expected")
    if expected is not None and expected not in DECISIONS:
        raise fail("expected", f"must be one of {DECISIONS}, got {expected!r}")
    layer = data.get("deciding_layer")
    if layer is not None and layer not in LAYER_ORDER:
        layers = tuple(str(name) for name in LAYER_ORDER)
        raise fail("deciding_layer", f"must be null or one of {layers}, got {layer!r}")
    names = data.get("policy_names")
    if names is not None and not isinstance(names, dict):
        raise fail("policy_names", "must be an object mirroring policies")
    return {
        "expected": expected,
        "expected_deciding_layer": layer,
        "states_deciding_layer": "deciding_layer" in data,
        "policy_names": names,
    }


def _list_or_empty(value: Any) -> Any:
    return [] if value is None else value


def _required_string(request: dict[str, Any], key: str, fail: Any) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise fail(f"request.{key}", "missing or not a non-empty string")
    return value


def _account(request: dict[str, Any], key: str, derived: str | None, fail: Any) -> str:
    value = request.get(key)
    if value is None:
        if derived is None:
            raise fail(f"request.{key}", "missing, and the ARN names no account; give it")
        return derived
    if not isinstance(value, str) or len(value) != 12 or not value.isdigit():
        raise fail(f"request.{key}", f"must be a 12-digit account id, got {value!r}")
    return value


def _context(raw: Any, fail: Any) -> dict[str, ContextValue]:
    if not isinstance(raw, dict):
        raise fail("request.context", "must be an object of condition key -> value")
    scalar = (str, bool, int, float)
    for key, value in raw.items():
        ok = isinstance(value, scalar) or (
            isinstance(value, list) and all(isinstance(item, scalar) for item in value)
        )
        if not ok:
            raise fail(
                f"request.context.{key}", "must be a string, boolean, number or a list of those"
            )
    return dict(raw)


def _levels(raw: Any, where: str, fail: Any) -> tuple[tuple[Document, ...], ...]:
    if not isinstance(raw, list):
        raise fail(where, "must be a list of levels (root first), each a list of documents")
    levels = []
    for number, level in enumerate(raw):
        if not isinstance(level, list):
            raise fail(f"{where}[{number}]", "each level must be a list of policy documents")
        levels.append(_documents(level, f"{where}[{number}]", fail))
    return tuple(levels)


def _documents(raw: list[Any], where: str, fail: Any) -> tuple[Document, ...]:
    for index, doc in enumerate(raw):
        if type(doc) is not dict:  # noqa: E721 - fast path; subclasses re-checked below
            _document(doc, f"{where}[{index}]", fail)
    return tuple(raw)


def _optional_document(raw: Any, where: str, fail: Any) -> Document | None:
    return None if raw is None else _document(raw, where, fail)


def _document(raw: Any, where: str, fail: Any) -> Document:
    if not isinstance(raw, dict):
        raise fail(where, "must be a policy document (a JSON object)")
    return raw


# --- compiling ----------------------------------------------------------------------------


_policy_sets: dict[tuple[Any, ...], tuple[list[Document], PolicySet]] = {}


def _cached_policy_set(scenario: Scenario) -> PolicySet:
    """The scanner builds one scenario per check from the same document objects; reuse
    the PolicySet when every document is the very same object as last time."""
    documents: list[Document] = [doc for level in scenario.scps for doc in level]
    documents += [doc for level in scenario.rcps for doc in level]
    documents += [*scenario.identity]
    names = scenario.policy_names
    key = (
        tuple(len(level) for level in scenario.scps),
        tuple(len(level) for level in scenario.rcps),
        tuple(map(id, documents)),
        id(scenario.permissions_boundary),
        id(scenario.resource_policy),
        _frozen(names) if names else None,
        authorizer_for(scenario.action, scenario.resource).name,
    )
    known = _policy_sets.get(key)
    if known is not None:
        kept, policy_set = known
        singles = [scenario.permissions_boundary, scenario.resource_policy]
        if all(a is b for a, b in zip(kept, [*documents, *singles], strict=True)):
            return policy_set
    policy_set = _compile_policies(scenario, scenario.origin)
    if len(_policy_sets) >= 1024:
        _policy_sets.clear()
    _policy_sets[key] = (
        [*documents, scenario.permissions_boundary, scenario.resource_policy],
        policy_set,
    )
    return policy_set


def _frozen(value: Any) -> Any:
    """A hashable copy of a JSON value (lists -> tuples, objects -> sorted item tuples)."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return tuple(sorted((key, _frozen(item)) for key, item in value.items()))
    return value


def _compile_policies(scenario: Scenario, origin: str) -> PolicySet:
    names = scenario.policy_names or {}
    authorizer = authorizer_for(scenario.action, scenario.resource)

    def compiled(doc: Document, where: str, name: str, principal_allowed: bool) -> NamedCompiled:
        try:
            policy = compile_policy(doc)
        except PolicyError as error:
            field_path = f"{where}.{error.path}" if error.path else where
            raise ScenarioError(origin, field_path, error.message) from error
        if not principal_allowed:
            statement = _first_principal_statement(policy)
            if statement is not None:
                element = "NotPrincipal" if statement.not_principal else "Principal"
                raise ScenarioError(
                    origin,
                    f"{where}.Statement[{statement.index}].{element}",
                    f"{element} is only allowed in resource-based policies and RCPs",
                )
        return NamedCompiled(name, policy)

    def levels(kind: str, raw: tuple[tuple[Document, ...], ...], principals: bool):
        given = names.get(kind) or []
        return tuple(
            tuple(
                compiled(
                    doc,
                    f"policies.{kind}[{n}][{i}]",
                    _name_at(given, n, i) or f"level {n} #{i}",
                    principals,
                )
                for i, doc in enumerate(level)
            )
            for n, level in enumerate(raw)
        )

    boundary = None
    if scenario.permissions_boundary is not None:
        boundary = compiled(
            scenario.permissions_boundary,
            "policies.permissions_boundary",
            _str(names.get("permissions_boundary")) or "permissions boundary",
            False,
        )
    given_identity = names.get("identity") or []
    identity = tuple(
        compiled(doc, f"policies.identity[{i}]", _name_at([given_identity], 0, i) or f"#{i}", False)
        for i, doc in enumerate(scenario.identity)
    )
    resource = None
    if scenario.resource_policy is not None:
        resource = compiled(
            authorizer.prepare(scenario.resource_policy),
            "policies.resource_policy",
            _str(names.get("resource_policy")) or authorizer.policy_word,
            True,
        )
    return PolicySet(
        scps=levels("scps", scenario.scps, False),
        rcps=levels("rcps", scenario.rcps, True),
        permissions_boundary=boundary,
        identity=identity,
        resource_policy=resource,
    )


# Held weakly: a strong reference kept every finished account's compiled policies (and
# their documents) alive until 4,096 had piled up, about 150 MB in a large scan.
_principal_statements: dict[int, tuple[weakref.ref[CompiledPolicy], CompiledStatement | None]] = {}


def _first_principal_statement(policy: CompiledPolicy) -> CompiledStatement | None:
    known = _principal_statements.get(id(policy))
    if known is None or known[0]() is not policy:
        if len(_principal_statements) >= 4096:
            _principal_statements.clear()
        known = (weakref.ref(policy), policy.first_principal_statement())
        _principal_statements[id(policy)] = known
    return known[1]


def _name_at(given: Any, level: int, index: int) -> str | None:
    if not given:
        return None
    try:
        return _str(given[level][index])
    except (IndexError, KeyError, TypeError):
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- loading ------------------------------------------------------------------------------


def load_scenarios(paths: list[str | Path]) -> list[Scenario | ScenarioError]:
    """Every scenario in `paths` (files holding one object or an array, or folders of
    *.json files, read in name order), in input order; unreadable ones as ScenarioError."""
    out: list[Scenario | ScenarioError] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir():
            files = sorted(path.glob("*.json"))
            if not files:
                out.append(ScenarioError(str(path), "", "folder holds no *.json files"))
            for file in files:
                out.extend(_load_file(file))
        else:
            out.extend(_load_file(path))
    return out


def _load_file(path: Path) -> list[Scenario | ScenarioError]:
    origin = str(path)
    try:
        # UTF-8 (BOM tolerated), size, nesting depth, number and surrogate problems are
        # this file's error: the other files are still answered
        data = load_json(read_text(path))
    except InputError as error:
        return [ScenarioError(origin, "", str(error))]
    if isinstance(data, list):
        return [_one(item, f"{origin}[{i}]") for i, item in enumerate(data)]
    return [_one(data, origin)]


def _one(data: Any, origin: str) -> Scenario | ScenarioError:
    try:
        return Scenario.from_dict(data, origin=origin)
    except ScenarioError as error:
        return error
