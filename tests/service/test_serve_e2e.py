"""End to end: `vaultscan serve` (a subprocess) scans the sandbox organization on a moto
server and records into PostgreSQL; a policy change between two scans must show up as a
drift event in the database, in /metrics and in a real Prometheus, which also runs every
query of the Grafana dashboard and evaluates the alert rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from processes import aws_environment, scratch_database, wait_until
from prometheus_client.parser import text_string_to_metric_families
from promtools import require_tool
from serve_harness import (
    REPO_ROOT,
    MotoSandbox,
    PrometheusProcess,
    ServeProcess,
    finished_runs,
)
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow

RULES = REPO_ROOT / "exporters" / "rules" / "vaultscan.rules.yml"
DASHBOARD = REPO_ROOT / "exporters" / "grafana" / "vaultscan.json"
# Grafana's variables as a user would see them: "All" OUs, a rate window of a minute.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$__interval": "15s",
    "$ou": ".*",
    "$account": ".*",
    "$region": ".*",
}


@dataclass
class Scenario:
    serve: ServeProcess
    prometheus: PrometheusProcess
    database_url: str
    broken_account: str
    once: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def scenario(
    moto_sandbox: MotoSandbox,
    postgres_admin_conninfo: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scenario]:
    from scanner.sandbox import break_account

    workdir = tmp_path_factory.mktemp("serve-e2e")
    env = aws_environment(moto_sandbox.endpoint)
    with scratch_database(postgres_admin_conninfo) as url:
        config = workdir / "vaultscan.yaml"
        serve = ServeProcess.configured(
            config,
            workdir / "serve.log",
            moto_sandbox.settings(),
            env,
            database_url=url,
            interval_minutes=60,
            run_at_startup=True,
            stop_grace_seconds=10,
        )
        prometheus = None
        try:
            serve.wait_ready()
            prometheus = PrometheusProcess.start(
                require_tool("prometheus"), workdir, [f"127.0.0.1:{serve.metrics_port}"], [RULES]
            )
            # first scan: the one serve runs at start-up
            wait_until(lambda: finished_runs(url), timeout=60, what="the start-up scan")
            healthy = moto_sandbox.sandbox.healthy_accounts[0]
            with moto_sandbox.client_env():
                break_account(moto_sandbox.session(), moto_sandbox.sandbox, healthy.account_id)
            # second scan: a one-shot replica while the service is idle
            once = subprocess.run(
                [sys.executable, "-m", "scanner", "serve", "--config", str(config), "--once"],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=90,
            )
            yield Scenario(serve, prometheus, url, healthy.account_id, once)
        finally:
            if prometheus is not None:
                prometheus.stop()
            serve.stop()


def test_second_scan_records_the_regression(scenario: Scenario) -> None:
    assert scenario.once.returncode == 0, scenario.once.stdout + scenario.once.stderr
    runs = finished_runs(scenario.database_url)
    assert [status for _, status in runs] == ["succeeded", "succeeded"]
    assert f"scan run {runs[1][0]}: succeeded" in scenario.once.stdout
    engine = create_engine(scenario.database_url)
    with engine.connect() as conn:
        events = conn.execute(
            text("SELECT account_id, scan_run_id FROM drift_events WHERE kind = 'regressed'")
        ).all()
    engine.dispose()
    assert events, "no regression recorded"
    assert {account for account, _ in events} == {scenario.broken_account}
    assert {run for _, run in events} == {runs[1][0]}


def test_regression_is_in_metrics_of_the_long_running_replica(scenario: Scenario) -> None:
    # the scan ran in another process: the numbers come from the database
    families = {f.name: f for f in text_string_to_metric_families(scenario.serve.metrics())}
    drift = {
        s.labels["kind"]: s.value
        for s in families["vaultscan_drift_events"].samples
        if s.name.endswith("_total")
    }
    assert drift["regressed"] > 0
    failing = [s.labels for s in families["vaultscan_role_failing_since_timestamp_seconds"].samples]
    broken = [labels for labels in failing if labels["account_id"] == scenario.broken_account]
    assert broken and all(labels["role"] == "BackupOperator" for labels in broken)
    scheduler = {
        s.labels["outcome"]: s.value
        for s in families["vaultscan_scheduler_scans"].samples
        if s.name.endswith("_total")
    }
    assert scheduler["scanned"] == 1


def test_prometheus_sees_the_regression_and_fires_the_alert(scenario: Scenario) -> None:
    prometheus = scenario.prometheus

    def regressed() -> list:
        return prometheus.query('increase(vaultscan_drift_events_total{kind="regressed"}[5m]) > 0')

    wait_until(regressed, timeout=30, what="the regression in Prometheus")

    wait_until(
        lambda: prometheus.firing("VaultscanRegressionDetected"),
        timeout=30,
        what="VaultscanRegressionDetected firing",
    )


def test_every_dashboard_query_returns_data(scenario: Scenario) -> None:
    prometheus = scenario.prometheus
    # rate windows need a few scrapes after the last scan
    wait_until(
        lambda: prometheus.query("count_over_time(vaultscan_database_up[1m]) > 5"),
        timeout=30,
        what="enough scrapes",
    )
    dashboard = json.loads(DASHBOARD.read_text())
    template = next(v for v in dashboard["templating"]["list"] if v["name"] == "ou")
    # Grafana's label_values(vaultscan_ou_checks, ou), as PromQL
    assert template["definition"] == "label_values(vaultscan_ou_checks, ou)"
    ous = [r["metric"]["ou"] for r in prometheus.query("group by (ou) (vaultscan_ou_checks)")]
    assert len(ous) >= 3, "the OU variable would offer no choice"
    assert prometheus.query("group by (account_name) (vaultscan_account_checks)")
    assert prometheus.query("group by (region) (vaultscan_account_checks)")
    # one OU selected: an OU with a child OU includes the child's accounts
    parent = min((ou for ou in ous if any(o.startswith(ou + "/") for o in ous)), key=len)
    child_accounts = prometheus.query(
        f'group by (account_name) (vaultscan_account_checks{{ou=~"{parent}(/.*)?"}})'
    )
    direct_accounts = prometheus.query(
        f'group by (account_name) (vaultscan_account_checks{{ou="{parent}"}})'
    )
    assert len(child_accounts) > len(direct_accounts)
    executed = 0
    empty = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name in sorted(DASHBOARD_VARIABLES, key=len, reverse=True):
                expr = expr.replace(name, DASHBOARD_VARIABLES[name])
            assert not re.search(r"\$\w+", expr), f"unsubstituted variable in {expr}"
            executed += 1
            if not prometheus.query(expr):
                empty.append(f"{panel['title']}: {expr}")
    # the annotations: each marked something during the test (a scan, the regression)
    for annotation in dashboard["annotations"]["list"]:
        if "expr" not in annotation:
            continue  # Grafana's built-in annotations
        expr = annotation["expr"]
        for name in sorted(DASHBOARD_VARIABLES, key=len, reverse=True):
            expr = expr.replace(name, DASHBOARD_VARIABLES[name])
        executed += 1
        # evaluated now: within two minutes of the second scan and its regression
        if not prometheus.query(expr):
            empty.append(f"annotation {annotation['name']}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    assert executed >= 20


def test_sigterm_stops_the_idle_service_cleanly(scenario: Scenario) -> None:
    started = time.monotonic()
    assert scenario.serve.stop(timeout=30) == 0, scenario.serve.log()
    assert time.monotonic() - started < 15
    engine = create_engine(scenario.database_url)
    with engine.connect() as conn:
        running = conn.execute(text("SELECT count(*) FROM scan_runs WHERE status = 'running'"))
        assert running.scalar_one() == 0
    engine.dispose()
