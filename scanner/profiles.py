"""Requirement profiles: which actions, on which resources, with which request context a
designated role must be allowed. Profiles are YAML data (scanner/profiles/*.yaml built in,
plus `profile_files` from the settings), so adding a requirement never needs code."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Any

import yaml

from scanner.config import ConfigError, Settings

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"
PLACEHOLDERS = frozenset({"Partition", "Region", "Account", "KeyArn", "DnsSuffix"})
# service endpoint domain per partition (service principals and kms:ViaService values)
DNS_SUFFIX = {
    "aws": "amazonaws.com",
    "aws-cn": "amazonaws.com.cn",
    "aws-us-gov": "amazonaws.com",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
}
ACTION_RE = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9]+$")
CONTEXT_KEY_RE = re.compile(r"^[A-Za-z0-9-]+:[A-Za-z0-9/_:.@+=,-]+$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")

ContextValue = str | bool | int | float | list[str] | list[bool] | list[int] | list[float]


class ProfileError(ConfigError, ValueError):
    """A profile is malformed or unknown; the message names the file and the field.
    A ConfigError, so every bad-input path of a command can handle both alike."""


@dataclass
class Requirement:
    action: str
    resource_template: str
    context: dict[str, object] = field(default_factory=dict)

    @property
    def needs_key(self) -> bool:
        """True when the resource is a KMS key: the requirement is checked once per key."""
        return "${KeyArn}" in self.resource_template or any(
            "${KeyArn}" in str(value) for value in self.context.values()
        )

    def render(
        self, partition: str, region: str, account: str, key_arn: str | None = None
    ) -> tuple[str, dict]:
        """The resource ARN and the request context with every placeholder filled in."""
        if self.needs_key and not key_arn:
            raise ValueError(f"{self.action} needs a KMS key ARN to render its resource")
        values = {
            "Partition": partition,
            "Region": region,
            "Account": account,
            "KeyArn": key_arn or "",
            "DnsSuffix": DNS_SUFFIX.get(partition, "amazonaws.com"),
        }
        resource = _substitute(self.resource_template, values)
        context = {key: _fill(value, values) for key, value in self.context.items()}
        return resource, context


@dataclass
class Profile:
    name: str
    description: str
    requirements: list[Requirement]


@lru_cache(maxsize=1024)
def _parts(template: str) -> tuple[tuple[str, str | None], ...]:
    """`template` as (literal text, placeholder name or None) pairs, parsed once: a scan
    renders the same few templates for every check."""
    parts: list[tuple[str, str | None]] = []
    last = 0
    for match in Template.pattern.finditer(template):
        name = match.group("braced") or match.group("named")
        literal = template[last : match.start()]
        if match.group("escaped") is not None:
            parts.append((literal + "$", None))
        else:
            parts.append((literal, name))
        last = match.end()
    parts.append((template[last:], None))
    return tuple(parts)


def _substitute(template: str, values: dict[str, str]) -> str:
    """Template(template).substitute(values): placeholders were validated on loading."""
    return "".join(text + (values[name] if name else "") for text, name in _parts(template))


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _substitute(value, values)
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


def _check_template(text: str, where: str) -> None:
    template = Template(text)
    if not template.is_valid():
        raise ProfileError(f"{where}: malformed placeholder in {text!r}; write ${{Name}}")
    unknown = set(template.get_identifiers()) - PLACEHOLDERS
    if unknown:
        raise ProfileError(
            f"{where}: unknown placeholder(s) {sorted(unknown)}; "
            f"expected one of {sorted(PLACEHOLDERS)}"
        )


def _parse_context(raw: Any, where: str) -> dict[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: expected a mapping of condition key to value")
    context: dict[str, object] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not CONTEXT_KEY_RE.match(key):
            raise ProfileError(f"{where}: {key!r} is not a condition key like 'kms:ViaService'")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str | bool | int | float):
                raise ProfileError(
                    f"{where}.{key}: expected a string, boolean, number or a list of them"
                )
            if isinstance(item, str):
                _check_template(item, f"{where}.{key}")
        context[key] = list(value) if isinstance(value, list) else value
    return context


def parse_profile(data: Any, source: str) -> Profile:
    """Validate one profile document; `source` names the file in error messages."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping with name, description, requirements")
    unknown = set(data) - {"name", "description", "requirements"}
    if unknown:
        raise ProfileError(f"{source}: unknown field(s) {sorted(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ProfileError(f"{source}: name: expected lowercase words joined by '-', got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ProfileError(f"{source}: description: expected text")
    raw_requirements = data.get("requirements")
    if not isinstance(raw_requirements, list) or not raw_requirements:
        raise ProfileError(f"{source}: requirements: expected a non-empty list")
    requirements = []
    for index, raw in enumerate(raw_requirements):
        where = f"{source}: requirements[{index}]"
        if not isinstance(raw, dict):
            raise ProfileError(f"{where}: expected a mapping with action, resource, context")
        extra = set(raw) - {"action", "resource", "context"}
        if extra:
            raise ProfileError(f"{where}: unknown field(s) {sorted(extra)}")
        action = raw.get("action")
        if not isinstance(action, str) or not ACTION_RE.match(action):
            raise ProfileError(f"{where}.action: expected 'service:Action', got {action!r}")
        resource = raw.get("resource")
        if not isinstance(resource, str) or not resource:
            raise ProfileError(f"{where}.resource: expected an ARN template or '*'")
        _check_template(resource, f"{where}.resource")
        context = _parse_context(raw.get("context"), f"{where}.context")
        requirements.append(Requirement(action, resource, context))
    return Profile(name=name, description=description, requirements=requirements)


def read_profile_file(path: Path) -> Profile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from exc
    return parse_profile(data, str(path))


def available_profiles(extra_files: list[Path] | tuple[Path, ...] = ()) -> dict[str, Profile]:
    """Built-in profiles, then extra files (a file may replace a built-in of the same name)."""
    profiles = {}
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        profile = read_profile_file(path)
        profiles[profile.name] = profile
    for path in extra_files:
        profile = read_profile_file(Path(path))
        profiles[profile.name] = profile
    return profiles


def load_profiles(settings: Settings) -> list[Profile]:
    """The profiles named in `settings.profiles`, in that order; ProfileError if unknown."""
    available = available_profiles(settings.profile_files)
    missing = [name for name in settings.profiles if name not in available]
    if missing:
        raise ProfileError(
            f"profiles: unknown profile(s) {missing}; available: {sorted(available)} "
            f"(add more with profile_files)"
        )
    return [available[name] for name in settings.profiles]
