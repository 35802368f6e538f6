"""The alert rules: promtool validates them and runs their unit tests."""

from __future__ import annotations

import re
import subprocess

import yaml
from promtools import REPO_ROOT, require_tool

RULES = REPO_ROOT / "exporters" / "rules" / "vaultscan.rules.yml"
RULE_TESTS = sorted((REPO_ROOT / "exporters" / "rules" / "tests").glob("*.yml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, timeout=60
    )


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests() -> None:
    assert RULE_TESTS, "no promtool rule tests found"
    result = _promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_catches_a_wrong_expectation(tmp_path) -> None:
    # the unit tests would be worthless if promtool accepted anything
    broken = RULE_TESTS[0].read_text().replace("2h 1m 0s", "2h 0m 0s")
    target = tmp_path / "broken_test.yml"
    target.write_text(broken.replace("../vaultscan.rules.yml", str(RULES)))
    result = _promtool("test", "rules", str(target))
    assert result.returncode != 0


def _alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_is_tested_and_has_a_runbook() -> None:
    tested = "".join(path.read_text() for path in RULE_TESTS)
    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in operations.splitlines()
        if line.startswith("#")
    }
    for alert in _alerts():
        name = alert["alert"]
        assert f"alertname: {name}\n" in tested, f"{name} has no promtool test"
        runbook = alert["annotations"]["runbook_url"]
        assert runbook.split("#", 1)[1] in anchors, f"{name}: {runbook} not in operations.md"


def test_rules_only_use_documented_metrics() -> None:
    documented = (REPO_ROOT / "docs" / "metrics.md").read_text()
    exprs = " ".join(alert["expr"] for alert in _alerts())
    for metric in set(re.findall(r"\bvaultscan_[a-z_]+", exprs)):
        assert f"`{metric}`" in documented, f"{metric} used in a rule but not in metrics.md"
