"""Locating promtool and prometheus: a missing tool skips locally but fails in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def require_tool(name: str) -> str:
    for candidate in (REPO_ROOT / ".tools" / "bin" / name,):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found: run `bash scripts/install-test-tools.sh`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
