"""The documentation-sourced authorization scenario corpus (tests/scenarios/).

Every scenario states the answer AWS documents for one authorization question, with the
URL of the page that decides it. The structural tests keep the corpus well formed; the
engine tests replay each scenario through `scanner.policy.evaluate` and through
`vaultscan explain`, so a wrong verdict shows up under the scenario's own name.
See docs/scenario-corpus.md for the topics and how to add a scenario.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIO_DIR = REPO_ROOT / "tests" / "scenarios"

DECISIONS = {"allowed", "explicitDeny", "implicitDeny"}
LAYERS = {"scp", "rcp", "permissions_boundary", "identity", "resource_policy"}
VAULT_ACTIONS = (
    "backup:CreateBackupVault",
    "backup-storage:MountCapsule",
    "kms:CreateGrant",
    "kms:DescribeKey",
    "kms:RetireGrant",
    "kms:Decrypt",
    "kms:GenerateDataKey",
)
MIN_SCENARIOS = 80
DOCS_PREFIX = "https://docs.aws.amazon.com/"


def _load_corpus() -> list[tuple[str, dict[str, Any]]]:
    """(file name, scenario) for every scenario, files in name order, scenarios in file order."""
    corpus: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(SCENARIO_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        documents = data if isinstance(data, list) else [data]
        corpus.extend((path.name, doc) for doc in documents)
    return corpus


CORPUS = _load_corpus()


def _scenario_id(entry: tuple[str, dict[str, Any]]) -> str:
    return str(entry[1].get("name", f"{entry[0]}:unnamed"))


# --- the corpus itself ----------------------------------------------------------------


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= MIN_SCENARIOS, (
        f"{len(CORPUS)} scenarios under {SCENARIO_DIR}, expected at least {MIN_SCENARIOS}"
    )


def test_every_scenario_names_its_source_and_answer() -> None:
    problems = []
    for file_name, doc in CORPUS:
        where = f"{file_name}:{doc.get('name', '?')}"
        if not isinstance(doc.get("name"), str) or not doc["name"]:
            problems.append(f"{where}: no name")
        source = doc.get("source")
        if not isinstance(source, str) or not source.startswith(DOCS_PREFIX):
            problems.append(f"{where}: source {source!r} is not a {DOCS_PREFIX} URL")
        if not isinstance(doc.get("explanation"), str) or not doc["explanation"].strip():
            problems.append(f"{where}: no explanation")
        if doc.get("expected") not in DECISIONS:
            problems.append(f"{where}: expected {doc.get('expected')!r} not in {sorted(DECISIONS)}")
        if "deciding_layer" in doc:
            layer = doc["deciding_layer"]
            if doc.get("expected") == "allowed" and layer is not None:
                problems.append(f"{where}: allowed but deciding_layer {layer!r}")
            if doc.get("expected") != "allowed" and layer not in LAYERS:
                problems.append(f"{where}: deciding_layer {layer!r} not in {sorted(LAYERS)}")
        request = doc.get("request", {})
        for field in ("principal_arn", "action", "resource"):
            if not isinstance(request.get(field), str):
                problems.append(f"{where}: request.{field} missing")
        if not isinstance(doc.get("policies"), dict):
            problems.append(f"{where}: policies missing")
    assert not problems, "\n".join(problems)


def test_scenario_names_are_unique() -> None:
    seen: dict[str, str] = {}
    duplicates = []
    for file_name, doc in CORPUS:
        name = doc.get("name")
        if name in seen:
            duplicates.append(f"{name} ({seen[name]} and {file_name})")
        seen[name] = file_name
    assert not duplicates, "duplicate scenario names: " + ", ".join(duplicates)


def test_every_vault_action_is_covered_both_ways() -> None:
    outcomes: dict[str, set[str]] = {action: set() for action in VAULT_ACTIONS}
    for _, doc in CORPUS:
        action = doc.get("request", {}).get("action")
        if action in outcomes:
            outcomes[action].add("allowed" if doc["expected"] == "allowed" else "denied")
    missing = {a: sorted({"allowed", "denied"} - seen) for a, seen in outcomes.items()}
    missing = {a: m for a, m in missing.items() if m}
    assert not missing, f"vault actions without these outcomes: {missing}"


# --- the engine against the corpus -----------------------------------------------------


@pytest.mark.parametrize("entry", CORPUS, ids=[_scenario_id(e) for e in CORPUS])
def test_engine_agrees_with_documentation(entry: tuple[str, dict[str, Any]]) -> None:
    from scanner.policy import Scenario, evaluate

    file_name, doc = entry
    result = evaluate(Scenario.from_dict(doc))
    assert result.decision == doc["expected"], (
        f"{file_name}:{doc['name']}: engine says {result.decision}, "
        f"{doc['source']} says {doc['expected']} ({doc['explanation']})"
    )
    if "deciding_layer" in doc:
        assert result.deciding_layer == doc["deciding_layer"], (
            f"{file_name}:{doc['name']}: deciding layer {result.deciding_layer!r}, "
            f"expected {doc['deciding_layer']!r} ({doc['explanation']})"
        )


def test_explain_command_agrees_with_every_scenario() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "scanner", "explain", str(SCENARIO_DIR), "--json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, (
        f"vaultscan explain exited {completed.returncode}\n"
        f"stderr: {completed.stderr[-2000:]}\nstdout: {completed.stdout[-2000:]}"
    )
    answers = json.loads(completed.stdout)
    assert len(answers) == len(CORPUS)
    disagreeing = [
        f"{answer.get('name')}: {answer.get('decision')} (expected {answer.get('expected')})"
        for answer in answers
        if answer.get("agrees") is not True
    ]
    assert not disagreeing, "explain disagrees with:\n" + "\n".join(disagreeing)
