"""Reading untrusted JSON and YAML within bounds: size, nesting, expanded size (YAML
aliases), numbers, text encoding. Each problem is an InputError naming what is wrong and
where, never a traceback and never an echo of the whole input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# A scenario or configuration file is a few KiB; these leave a wide margin.
MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 64
# Nodes after expanding YAML aliases: a "billion laughs" file is a few hundred bytes that
# expands to 10^9 nodes.
MAX_NODES = 200_000


class InputError(ValueError):
    """The input cannot be used; str() says why (and where, when known)."""


def read_text(path: Path) -> str:
    """The file as text: UTF-8 (a byte-order mark tolerated), at most MAX_BYTES."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(f"file is {size} bytes; the limit is {MAX_BYTES}")
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            f"not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start})"
        ) from None


def load_json(text: str) -> Any:
    """The parsed JSON document, checked by `check_tree`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise InputError(f"nested too deeply (the limit is {MAX_DEPTH} levels)") from None
    except ValueError as error:  # integers past Python's 4300-digit conversion limit
        raise InputError(f"invalid JSON: {str(error).split(';')[0]}") from None
    check_tree(data)
    return data


def load_yaml(text: str) -> Any:
    """The parsed YAML document (safe loader), refused before construction when its
    aliases expand past MAX_NODES or it nests deeper than MAX_DEPTH."""
    if len(text) > MAX_BYTES:
        raise InputError(f"document is {len(text)} characters; the limit is {MAX_BYTES}")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise InputError(f"nested too deeply (the limit is {MAX_DEPTH} levels)") from None
    if node is None:
        return None
    _check_node_size(node)
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 (SafeLoader)
    except RecursionError:
        raise InputError(f"nested too deeply (the limit is {MAX_DEPTH} levels)") from None
    except ValueError as error:  # e.g. an integer past the digit limit
        raise InputError(f"invalid value: {str(error).split(';')[0]}") from None
    check_tree(data)
    return data


def _check_node_size(root: yaml.Node) -> None:
    """Expanded node count and depth of a composed YAML graph, computed without
    expanding it (an alias is the same node object, counted once per reference)."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            depths[key] = 1 + max((depths[id(child)] for child in children), default=0)
            if sizes[key] > MAX_NODES:
                raise InputError(
                    f"expands to more than {MAX_NODES} values (YAML aliases); "
                    "write the values out or use fewer aliases"
                )
            if depths[key] > MAX_DEPTH:
                raise InputError(f"nested too deeply (the limit is {MAX_DEPTH} levels)")
            continue
        if key in sizes:
            continue
        if key in on_path:  # a recursive alias (&a [*a])
            raise InputError("a YAML alias refers to itself")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_tree(data: Any) -> None:
    """Depth at most MAX_DEPTH, and no lone surrogate in any string (it cannot be
    printed or stored as UTF-8). Iterative: the check itself never recurses."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise InputError(f"nested too deeply at {where} (the limit is {MAX_DEPTH} levels)")
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    _check_text(key, where)
                stack.append((item, depth + 1, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, f"{where}[{i}]") for i, item in enumerate(value))


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        place = f" at {where}" if where else ""
        raise InputError(f"lone surrogate \\u{code:04x}{place}: not valid Unicode text") from None
