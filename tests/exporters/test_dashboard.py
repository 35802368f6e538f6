"""The Grafana dashboard's structure, and every query parsed by promtool. That the queries
return data from a real Prometheus is tested end to end in tests/service/test_serve_e2e.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from promtools import REPO_ROOT, require_tool

DASHBOARD = REPO_ROOT / "exporters" / "grafana" / "vaultscan.json"
# What Grafana puts in place of its variables; "All" of a multi-value variable is .*
VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$__interval": "15s",
    "$ou": ".*",
    "$account": ".*",
    "$region": ".*",
}
# The last row: the scanner itself and whole-organization totals, deliberately unfiltered
# (its title says so). Every panel above it filters by the OU variable.
UNFILTERED_ROW = "Scanner and whole-organization totals"
# An unreachable account is unknown in every region: no region label to filter on.
NO_REGION_LABEL = {"Unreachable accounts", "Compliance by OU"}
NO_ACCOUNT_LABEL = {"Compliance by OU"}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):  # $__range before $__r...
        expr = expr.replace(name, VARIABLES[name])
    return expr


def _check_rules(
    path: Path, group: str, rules: list[dict[str, str]]
) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on `rules` written to `path` as one rule group."""
    path.write_text(yaml.safe_dump({"groups": [{"name": group, "rules": rules}]}))
    return subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dashboard_top_level() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("ou", "account", "region"):
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*", name
        assert variables[name]["multi"], name


def test_panels_have_ids_positions_and_queries() -> None:
    dashboard = _dashboard()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert {"x", "y", "w", "h"} <= grid.keys(), panel["title"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the dashboard"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_covers_what_operators_need() -> None:
    exprs = " ".join(t["expr"] for p in _panels(_dashboard()) for t in p["targets"])
    for metric in (
        "vaultscan_compliance_ratio",
        "vaultscan_role_failing_since_timestamp_seconds",
        "vaultscan_drift_events_total",
        "vaultscan_ou_checks",
        "vaultscan_account_checks",
        "vaultscan_last_successful_scan_timestamp_seconds",
        "vaultscan_scheduler_scans_total",
    ):
        assert metric in exprs, f"no panel shows {metric}"


def test_every_query_parses(tmp_path: Path) -> None:
    # promtool parses each expression as a recording rule: a syntax error fails here
    rules = [
        {
            "record": f"dashboard:panel_{panel['id']}_{target['refId']}".lower(),
            "expr": substitute(target["expr"]),
        }
        for panel in _panels(_dashboard())
        for target in panel["targets"]
    ]
    assert not [r for r in rules if re.search(r"\$\w+", r["expr"])], "unsubstituted variable"
    result = _check_rules(tmp_path / "dashboard.rules.yml", "dashboard", rules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_query_would_be_caught(tmp_path: Path) -> None:
    broken = [{"record": "x:y", "expr": "max by (kind (vaultscan_drift_events_total)"}]
    result = _check_rules(tmp_path / "broken.rules.yml", "x", broken)
    assert result.returncode != 0


@pytest.mark.parametrize(
    ("name", "metric"),
    [
        ("ou", "vaultscan_ou_checks"),
        ("account", "vaultscan_account_checks"),
        ("region", "vaultscan_account_checks"),
    ],
)
def test_template_variable_queries_name_real_metrics(name: str, metric: str) -> None:
    variable = next(v for v in _dashboard()["templating"]["list"] if v["name"] == name)
    assert metric in variable["definition"]


def _filtered_panels() -> list[dict[str, Any]]:
    """The panels above the unfiltered last row."""
    panels = _dashboard()["panels"]
    row = next(p for p in panels if p["type"] == "row" and p["title"].startswith(UNFILTERED_ROW))
    above = [p for p in panels if p["type"] != "row" and p["gridPos"]["y"] < row["gridPos"]["y"]]
    below = [p for p in panels if p["type"] != "row" and p["gridPos"]["y"] > row["gridPos"]["y"]]
    assert len(above) >= 12 and below, "the layout lost its filtered or its totals section"
    return above


def test_every_panel_filters_by_ou_account_and_region() -> None:
    ou_subtree = 'ou=~"$ou(/.*)?"'  # an OU and every OU below it
    for panel in _filtered_panels():
        for target in panel["targets"]:
            expr = target["expr"]
            # every selector of a vaultscan series carries the filters
            selectors = re.findall(r"vaultscan_\w+(\{[^}]*\})?", expr)
            assert selectors, f"{panel['title']}: no vaultscan metric"
            assert all(ou_subtree in s for s in selectors), f"{panel['title']}: {expr}"
            if panel["title"] not in NO_ACCOUNT_LABEL:
                assert all('account_name=~"$account"' in s for s in selectors), panel["title"]
            if panel["title"] not in NO_REGION_LABEL:
                assert all('region=~"$region"' in s for s in selectors), panel["title"]


def test_annotations_mark_scans_and_regressions(tmp_path: Path) -> None:
    annotations = {a["name"]: a for a in _dashboard()["annotations"]["list"]}
    scans, regressions = annotations["Scans"], annotations["Regressions"]
    assert "vaultscan_last_scan_timestamp_seconds" in scans["expr"]
    assert 'status="fail"' in regressions["expr"] and 'ou=~"$ou(/.*)?"' in regressions["expr"]
    rules = [
        {"record": f"dashboard:annotation_{n}", "expr": substitute(a["expr"])}
        for n, a in enumerate((scans, regressions))
    ]
    result = _check_rules(tmp_path / "annotations.rules.yml", "annotations", rules)
    assert result.returncode == 0, result.stdout + result.stderr
