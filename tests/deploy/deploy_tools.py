"""Finding and running the external checkers the deployment tests drive."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / ".tools"
CHART_DIR = REPO_ROOT / "helm" / "vaultscan"
CI_VALUES_DIR = REPO_ROOT / "helm" / "ci"
RULES_FILE = REPO_ROOT / "exporters" / "rules" / "vaultscan.rules.yml"
CRD_MODULES = TOOLS_DIR / "node" / "node_modules"


def missing(what: str) -> None:
    """Skip on a developer machine, fail under CI: a green CI must mean the check ran."""
    message = f"{what} not found: run `make tools` (scripts/install-test-tools.sh)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> str:
    """An executable from .tools/bin, the virtualenv's bin, or PATH."""
    search = os.pathsep.join(
        [str(TOOLS_DIR / "bin"), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )
    found = shutil.which(name, path=search)
    if found is None:
        missing(name)
    return str(found)


def crd_modules() -> Path:
    if not (CRD_MODULES / "@kubernetes-models" / "prometheus-operator").is_dir():
        missing("@kubernetes-models/prometheus-operator (in .tools/node)")
    return CRD_MODULES


def run(*args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result
