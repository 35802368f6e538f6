"""Which IAM roles are designated, and how IAM hands over their policy documents.
Shared by the per-role reads (scanner.aws.collect) and the one-call read
(scanner.aws.iam_details)."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

from scanner.config import RoleSelector
from scanner.model import PolicyDocument

SERVICE_LINKED_PATH = "/aws-service-role/"


def is_designated(name: str, path: str, tags: dict[str, str], selector: RoleSelector) -> bool:
    """True when the role matches any configured criterion (names/globs, path, tag)."""
    if path.startswith(SERVICE_LINKED_PATH):
        return False  # service-linked roles are only usable by their service
    if any(fnmatchcase(name.lower(), pattern.lower()) for pattern in selector.names):
        return True
    if selector.path and path.startswith(selector.path):
        return True
    if selector.tag is not None and selector.tag.key in tags:
        return selector.tag.value is None or tags[selector.tag.key] == selector.tag.value
    return False


def policy_document(value: Any) -> PolicyDocument:
    """IAM returns policy documents as URL-encoded JSON; botocore decodes them into dicts
    (`json_decode_policies`, an `after-call.iam` handler). The raw form is accepted too,
    for clients where that handler was unregistered."""
    if isinstance(value, dict):
        return value
    return json.loads(unquote(value))
