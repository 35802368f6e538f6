"""The container image, checked statically (no Docker engine runs the tests): hadolint,
and the properties the deployment relies on, read from the Dockerfile itself."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field

import pytest
from deploy_tools import REPO_ROOT, run, tool

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|cargo|rustc|libpq-dev)\b")
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def logical_lines(text: str) -> list[str]:
    """Instructions with their backslash continuations joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())[1]


def test_hadolint_passes() -> None:
    result = run(tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE), check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_base(tmp_path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install vaultscan\n")
    result = run(tool("hadolint"), str(bad), check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "latest" tag


def test_multi_stage_with_pinned_slim_python(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert stages[0].name == "builder"
    for stage in stages:
        assert PINNED_PYTHON.match(stage.base), f"base {stage.base!r} is not a pinned slim 3.11"
    assert any("pip wheel" in run_ for run_ in stages[0].all("RUN"))


def test_final_stage_runs_as_numeric_non_root(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, f"USER {users[-1]} must be a numeric non-root uid"
    assert not gid or (gid.isdigit() and int(gid) > 0)


def test_final_stage_has_no_build_tools(stages: list[Stage]) -> None:
    final = stages[-1]
    for command in final.all("RUN"):
        assert not BUILD_TOOLS.search(command), f"build tool in the final stage: {command}"
    copies = " ".join(final.all("COPY"))
    assert "--from=builder" not in copies or "/wheels" not in copies, "wheels must not be a layer"


def test_final_stage_entrypoint_command_port_and_migrations(stages: list[Stage]) -> None:
    final = stages[-1]
    assert json.loads(final.all("ENTRYPOINT")[-1]) == ["vaultscan"]
    assert json.loads(final.all("CMD")[-1]) == ["serve"]
    assert final.all("EXPOSE") == ["9108"]
    env = " ".join(final.all("ENV"))
    match = re.search(r"VAULTSCAN_ALEMBIC_DIR=(\S+)", env)
    assert match, "the image must say where the migrations are"
    alembic_dir = match.group(1)
    assert f"alembic/ {alembic_dir}/" in final.all("COPY")


def test_build_context_keeps_what_the_image_needs() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("pyproject.toml", "README.md", "scanner", "storage", "exporters", "alembic"):
        assert not any(fnmatch.fnmatch(needed, pattern) for pattern in patterns), needed
    for secret_or_bulky in (".git", ".venv", ".tools", ".vaultscan"):
        assert secret_or_bulky in patterns


def test_image_installs_the_core_package_without_the_demo_extra(stages: list[Stage]) -> None:
    # The image builds the wheel of `.` (no extras): moto, the demo's in-memory AWS, is
    # only in the `demo` extra, so neither the core package nor the image carries it.
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    core = project["project"]["dependencies"]
    assert not [dep for dep in core if dep.lower().startswith("moto")], core
    extras = project["project"]["optional-dependencies"]
    assert any(dep.startswith("moto[") for dep in extras["demo"])
    assert any(dep.startswith("moto[") for dep in extras["test"])  # make demo, make test
    builds = " ".join(stages[0].all("RUN"))
    assert re.search(r"pip wheel --wheel-dir /wheels (-c constraints\.txt )?\.(\s|$)", builds)
    assert "[" not in builds and "moto" not in " ".join(stages[-1].all("RUN"))
