"""Validate OCSF events against the OCSF schema as published, read from the `pydantic-ocsf`
package (its `ocsf/schemas/v<version>.json` holds the schema's classes, objects and
dictionary exactly as the OCSF project defines them). Nothing here restates a rule of
OCSF: requirements, types, enums and class ids all come from that file.

What is checked, recursively through objects and arrays:
- every attribute the class (with what it `extends`) marks `required` is present;
- every attribute is one the class, its parents, or the dictionary define (profile
  attributes such as `cloud` are accepted when `metadata.profiles` names a profile);
- values have the dictionary's type (`integer_t`, `long_t`, `timestamp_t` in epoch
  milliseconds, `string_t` and its subtypes, `boolean_t`, `float_t`, objects, arrays);
- `*_id` values with an enum are among its keys, and a sibling caption (`severity` for
  `severity_id`) equals the enum's caption unless the id is 99 (Other);
- `class_uid` and `type_uid` are the class's ids (category uid * 1000 + class uid, and
  class_uid * 100 + activity_id).

The package's generated pydantic models are not used: in 3.0.0 its 1.7.0
ComplianceFinding types `status_id` with the compliance check's enum (0, 1, 2, 3, 99)
instead of the finding status enum its own schema file defines (New ... Archived).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

OTHER = "99"
# Their enums in the source schema are placeholders the OCSF compiler fills per class;
# validate_event checks them against the class itself instead.
DERIVED = ("category_uid", "class_uid", "type_uid")


class OcsfSchemaError(LookupError):
    """The requested schema version or class is not in the package."""


@functools.cache
def load_schema(version: str) -> dict[str, Any]:
    name = f"v{version.replace('.', '_')}.json"
    try:
        text = (resources.files("ocsf") / "schemas" / name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise OcsfSchemaError(f"OCSF schema {version} is not installed ({exc})") from None
    return json.loads(text)


class Validator:
    def __init__(self, version: str) -> None:
        self.schema = load_schema(version)
        self.dictionary = self.schema["dictionary"]["attributes"]
        self.types = self.schema["dictionary"]["types"]["attributes"]

    # --- schema reading -------------------------------------------------------------

    def _chain(self, section: str, name: str) -> list[dict[str, Any]]:
        """The class and its parents, the class itself last."""
        chain = []
        current: str | None = name
        while current:
            item = self.schema[section].get(current)
            if item is None:
                raise OcsfSchemaError(f"no {section[:-1]} {current!r} in OCSF {self.version}")
            chain.append(item)
            current = item.get("extends")
        return list(reversed(chain))

    @property
    def version(self) -> str:
        return str(self.schema["version"])

    @functools.cache  # noqa: B019 (one validator per version lives for the process)
    def attributes(self, section: str, name: str) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for item in self._chain(section, name):
            for attr, spec in item.get("attributes", {}).items():
                if attr.startswith("$"):
                    continue  # $include of profiles and includes: not in the published file
                merged[attr] = {**self.dictionary.get(attr, {}), **merged.get(attr, {}), **spec}
        return merged

    def category(self, name: str) -> dict[str, Any]:
        """The category of an event class (from the class or the nearest parent)."""
        category = next(
            item.get("category")
            for item in reversed(self._chain("events", name))
            if item.get("category")
        )
        return self.schema["categories_meta"]["attributes"][category]

    def class_uid(self, name: str) -> int:
        return int(self.category(name)["uid"]) * 1000 + int(self.schema["events"][name]["uid"])

    # --- validation -----------------------------------------------------------------

    def validate_event(self, event: dict[str, Any], class_name: str) -> list[str]:
        """Every problem found, as 'path: what' lines; empty when the event is valid."""
        profiles = bool((event.get("metadata") or {}).get("profiles"))
        problems = self._object(event, "events", class_name, "", profiles)
        category = self.category(class_name)
        expected = self.class_uid(class_name)
        wanted = {
            "category_uid": category["uid"],
            "category_name": category["caption"],
            "class_uid": expected,
            "class_name": self.schema["events"][class_name]["caption"],
        }
        for attr, value in wanted.items():
            if (
                attr in event
                and event[attr] != value
                or attr.endswith("_uid")
                and attr not in event
            ):
                problems.append(f"{attr}: expected {value!r}, got {event.get(attr)!r}")
        activity = event.get("activity_id")
        if isinstance(activity, int) and event.get("type_uid") != expected * 100 + activity:
            problems.append(
                f"type_uid: expected {expected * 100 + activity}, got {event.get('type_uid')!r}"
            )
        return problems

    def _object(self, value: Any, section: str, name: str, path: str, profiles: bool) -> list[str]:
        if not isinstance(value, dict):
            return [f"{path or '.'}: expected an object ({name}), got {type(value).__name__}"]
        attributes = self.attributes(section, name)
        problems = [
            f"{path}{attr}: required by {name}, missing"
            for attr, spec in attributes.items()
            if spec.get("requirement") == "required" and attr not in value
        ]
        for attr, item in value.items():
            spec = attributes.get(attr)
            if spec is None:
                if not (profiles and attr in self.dictionary):
                    problems.append(f"{path}{attr}: not an attribute of {name}")
                    continue
                spec = self.dictionary[attr]
            problems += self._value(item, spec, f"{path}{attr}", profiles)
            problems += self._enum(value, attr, item, spec, path)
        return problems

    def _value(self, item: Any, spec: dict[str, Any], path: str, profiles: bool) -> list[str]:
        if spec.get("is_array"):
            if not isinstance(item, list):
                return [f"{path}: expected an array, got {type(item).__name__}"]
            element = {**spec, "is_array": False}
            return [
                p
                for i, entry in enumerate(item)
                for p in self._value(entry, element, f"{path}[{i}]", profiles)
            ]
        kind = spec.get("type", "")
        if kind in self.schema["objects"] or kind == "object":
            if kind == "object":
                return [] if isinstance(item, dict) else [f"{path}: expected an object"]
            return self._object(item, "objects", kind, f"{path}.", profiles)
        return self._scalar(item, kind, path)

    def _base_type(self, kind: str) -> str:
        seen = set()
        while kind in self.types and self.types[kind].get("type") and kind not in seen:
            seen.add(kind)
            kind = self.types[kind]["type"]
        return kind

    def _scalar(self, item: Any, kind: str, path: str) -> list[str]:
        base = self._base_type(kind)
        checks = {
            "integer_t": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "long_t": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float_t": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean_t": lambda v: isinstance(v, bool),
            "string_t": lambda v: isinstance(v, str),
            "json_t": lambda v: True,
        }
        check = checks.get(base)
        if check is None or check(item):
            return []
        return [f"{path}: expected {kind} ({base}), got {type(item).__name__} {item!r}"[:200]]

    def _enum(
        self, owner: dict[str, Any], attr: str, item: Any, spec: dict[str, Any], path: str
    ) -> list[str]:
        enum = spec.get("enum")
        if not enum or isinstance(item, list) or (not path and attr in DERIVED):
            return []
        key = str(item)
        if key not in enum:
            return [f"{path}{attr}: {item!r} is not one of {sorted(enum)}"]
        sibling = spec.get("sibling")
        if sibling and sibling in owner and key != OTHER:
            caption = enum[key].get("caption")
            if owner[sibling] != caption:
                return [f"{path}{sibling}: expected {caption!r} for {attr} {item}"]
        return []
