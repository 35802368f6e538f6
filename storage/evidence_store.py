"""A verdict's evidence with its policy documents stored once, by content.

A stored scenario (spec/authz-scenario.md) is mostly policy documents that every check of
the same account, role and region repeats, and many of them (SCPs, RCPs, AWS managed
policies) every account repeats too. Each document is stored once in
`evidence_documents`, keyed by the hash of its content, and `check_results.evidence`
refers to it:

- `evidence["documents"]`: the hashes of the scenario's documents, each once;
- `evidence["scenario"]["policies"]`: the same shape as the scenario's, each document
  replaced by its index in that list.

Evidence without "documents" (written before migration 0005, which converts it) keeps its
documents inline and is read as it is. `expand` gives readers back the scenario exactly as
the verdict carried it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, text

DOCUMENTS = "documents"  # the key of the hash list in a compact evidence

_BODIES = text("SELECT hash, body FROM evidence_documents WHERE hash = ANY(:hashes)")


def document_hash(document: Any) -> str:
    """The key of a document: a hash of its canonical JSON (keys sorted), so the same
    content hashes the same however it was built or read back."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


class DocumentSet:
    """The documents of the evidence compacted by one write, each once by hash."""

    def __init__(self) -> None:
        self.bodies: dict[str, Any] = {}
        # Checks of one role share the very same document objects: hash each object once
        # (the object is kept with its hash, so its id cannot be reused meanwhile).
        self._hash_of_object: dict[int, tuple[str, Any]] = {}

    def compact(self, evidence: dict[str, Any]) -> dict[str, Any]:
        """`evidence` in its stored form, its documents added to this set."""
        scenario = evidence.get("scenario")
        if not isinstance(scenario, dict) or not isinstance(scenario.get("policies"), dict):
            return evidence
        hashes: list[str] = []
        index: dict[str, int] = {}

        def refer(value: Any) -> Any:
            if isinstance(value, list):
                return [refer(item) for item in value]
            if not isinstance(value, dict):
                return value  # None: no such policy
            key = self._hash(value)
            if key not in index:
                index[key] = len(hashes)
                hashes.append(key)
            return index[key]

        policies = {name: refer(value) for name, value in scenario["policies"].items()}
        return {**evidence, "scenario": {**scenario, "policies": policies}, DOCUMENTS: hashes}

    def _hash(self, document: dict[str, Any]) -> str:
        known = self._hash_of_object.get(id(document))
        if known is not None:
            return known[0]
        key = document_hash(document)
        self._hash_of_object[id(document)] = (key, document)
        self.bodies.setdefault(key, document)
        return key

    def rows(self) -> list[dict[str, Any]]:
        """The documents as rows, in hash order (concurrent writers lock in one order)."""
        return [{"hash": key, "body": self.bodies[key]} for key in sorted(self.bodies)]


def hashes_of(evidence: Any) -> list[str]:
    """The document hashes a stored evidence refers to (none in the inline form)."""
    if isinstance(evidence, dict) and isinstance(evidence.get(DOCUMENTS), list):
        return evidence[DOCUMENTS]
    return []


def expand_evidence(evidence: Any, bodies: dict[str, Any]) -> Any:
    """A stored evidence with its documents back inline (inline evidence as it is)."""
    hashes = hashes_of(evidence)
    if not hashes:
        return evidence
    documents = [bodies[key] for key in hashes]

    def restore(value: Any) -> Any:
        if isinstance(value, list):
            return [restore(item) for item in value]
        if isinstance(value, int) and not isinstance(value, bool):
            return documents[value]
        return value

    scenario = evidence["scenario"]
    policies = {name: restore(value) for name, value in scenario["policies"].items()}
    expanded = {key: value for key, value in evidence.items() if key != DOCUMENTS}
    return {**expanded, "scenario": {**scenario, "policies": policies}}


def load_bodies(conn: Connection, hashes: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(hashes))
    if not wanted:
        return {}
    return {row.hash: row.body for row in conn.execute(_BODIES, {"hashes": wanted})}


def expand(conn: Connection, rows: list[dict[str, Any]], column: str = "evidence") -> None:
    """Put the documents back into the evidence of `rows` (in place), one query for all."""
    bodies = load_bodies(conn, (key for row in rows for key in hashes_of(row.get(column))))
    for row in rows:
        row[column] = expand_evidence(row.get(column), bodies)
