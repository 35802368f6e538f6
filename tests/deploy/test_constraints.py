"""constraints.txt pins every dependency, and both the developer/CI install (Makefile)
and the image (Dockerfile) install through it: the same versions everywhere."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO_ROOT / "constraints.txt"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep, f"not pinned with ==: {line}"
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_every_declared_dependency_is_pinned() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pins = _pins()
    missing = sorted({_name(r) for r in declared} - set(pins))
    assert not missing, f"add to constraints.txt (make constraints): {missing}"
    assert "vaultscan" not in pins


def test_makefile_and_dockerfile_install_through_the_constraints() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "CONSTRAINTS := constraints.txt" in makefile
    assert "pip install --quiet -c $(CONSTRAINTS) -e '.[test]'" in makefile
    assert re.search(r"^\$\(STAMP\): pyproject.toml \$\(CONSTRAINTS\)$", makefile, re.M)
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt ./" in dockerfile
    assert "pip wheel --wheel-dir /wheels -c constraints.txt ." in dockerfile
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert "constraints.txt" not in ignored
