"""The Helm chart, checked with the real helm and Kubernetes schemas.

Every value set (the defaults and each file in helm/ci/) is linted with `helm lint
--strict`, rendered with `helm template`, and every rendered object is validated: built-in
kinds with `kubernetes-validate --strict`, the prometheus-operator kinds against their CRD
schemas. Then the properties the chart promises are checked on the rendered objects.
"""

from __future__ import annotations

import json
import os
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_tools import (
    CHART_DIR,
    CI_VALUES_DIR,
    REPO_ROOT,
    RULES_FILE,
    crd_modules,
    run,
    tool,
)

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
KUBE_VERSIONS = ("1.29.0", "1.33.0")
NAMESPACE = "scanning"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
VALUE_SETS = ["default"] + sorted(path.stem for path in CI_VALUES_DIR.glob("*.yaml"))
HOOK = "helm.sh/hook"
HOOK_WEIGHT = "helm.sh/hook-weight"


def values_args(value_set: str) -> list[str]:
    return [] if value_set == "default" else ["-f", str(CI_VALUES_DIR / f"{value_set}.yaml")]


def values_of(value_set: str) -> dict[str, Any]:
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    if value_set == "default":
        return defaults
    return _merge(defaults, yaml.safe_load((CI_VALUES_DIR / f"{value_set}.yaml").read_text()))


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@cache
def render(value_set: str) -> tuple[dict[str, Any], ...]:
    result = run(
        tool("helm"),
        "template",
        "vs",
        str(CHART_DIR),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSIONS[0],
        *values_args(value_set),
    )
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [doc for doc in find(docs, kind) if name is None or doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}"
    return matches[0]


def pod_specs(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    specs = [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
        for doc in docs
        if doc["kind"] in {"Deployment", "Job"}
    ]
    specs += [
        (
            f"CronJob/{doc['metadata']['name']}",
            doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        )
        for doc in docs
        if doc["kind"] == "CronJob"
    ]
    return specs


def test_ci_value_sets_cover_the_promised_variants() -> None:
    assert {"monitoring-values", "networkpolicy-values", "existing-sa-values"} <= set(VALUE_SETS)


# --- helm lint and schema validation ----------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_strict(value_set: str) -> None:
    result = run(tool("helm"), "lint", "--strict", str(CHART_DIR), *values_args(value_set))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_builtin_kinds_pass_kubernetes_validate_strict(value_set: str, tmp_path: Path) -> None:
    docs = [doc for doc in render(value_set) if doc["kind"] not in CRD_KINDS]
    files = []
    for index, doc in enumerate(docs):
        path = tmp_path / f"{index:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    for version in KUBE_VERSIONS:
        result = run(tool("kubernetes-validate"), "--strict", "-k", version, *files)
        # one "passed" line per object: nothing was skipped for want of a schema
        assert result.stdout.count(" passed ") + result.stderr.count(" passed ") == len(files)


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path) -> None:
    deployment = json.loads(json.dumps(one(render("default"), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["runAsUser"] = 0
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(deployment))
    result = run(
        tool("kubernetes-validate"), "--strict", "-k", KUBE_VERSIONS[0], str(path), check=False
    )
    assert result.returncode != 0
    assert "runAsUser" in result.stdout + result.stderr


def validate_crds(docs: list[dict[str, Any]], tmp_path: Path) -> Any:
    path = tmp_path / "crds.json"
    path.write_text(json.dumps(docs))
    script = Path(__file__).with_name("validate_crds.mjs")
    return run(tool("node"), str(script), str(crd_modules()), str(path), check=False)


def test_monitoring_resources_match_the_prometheus_operator_crds(tmp_path: Path) -> None:
    docs = [doc for doc in render("monitoring-values") if doc["kind"] in CRD_KINDS]
    assert sorted(doc["kind"] for doc in docs) == ["PrometheusRule", "ServiceMonitor"]
    result = validate_crds(docs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": valid") == 2


def test_crd_validation_rejects_a_broken_service_monitor(tmp_path: Path) -> None:
    monitor = json.loads(json.dumps(one(render("monitoring-values"), "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["interval"] = "every minute"
    del monitor["spec"]["selector"]
    result = validate_crds([monitor], tmp_path)
    assert result.returncode == 1
    assert "interval" in result.stdout and "selector" in result.stdout


BAD_VALUES = {
    "unknown top-level key": {"replicas": 2},
    "unknown config key": {"config": {"region": ["us-east-1"]}},
    "wrong type": {"replicaCount": "two"},
    "bad enum": {"service": {"type": "Ingress"}},
    "no database secret": {"database": {"existingSecret": ""}},
    "existing service account without a name": {"serviceAccount": {"create": False}},
    "root user": {"podSecurityContext": {"runAsUser": 0}},
    "bad role arn": {"serviceAccount": {"roleArn": "vaultscan-role"}},
    "both pdb bounds": {"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
    "bad scrape interval": {"serviceMonitor": {"enabled": True, "interval": "1 minute"}},
    "slack webhook url in clear": {
        "config": {"notifications": {"slack": {"webhook_url": "https://hooks.slack.com/x"}}}
    },
    "webhook secret in clear": {"config": {"notifications": {"webhook": {"secret": "s"}}}},
    "runbook base url not absolute": {"runbookBaseUrl": "docs.example.com"},
    "unknown alert option": {"prometheusRule": {"alerts": {"VaultscanScanStale": {"page": True}}}},
    "topology spread without a key": {"topologySpreadConstraints": [{"maxSkew": 1}]},
    "event queue that is not a URL": {"config": {"events": {"queue_url": "vaultscan-events"}}},
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(case: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(BAD_VALUES[case]))
    result = run(tool("helm"), "template", "vs", str(CHART_DIR), "-f", str(path), check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr


def test_schema_config_keys_are_the_scanner_settings() -> None:
    from scanner.config import Settings

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert set(schema["properties"]["config"]["properties"]) == set(Settings.model_fields)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_rendered_config_is_valid_for_the_scanner(
    value_set: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner.config import load_settings

    for name in [name for name in os.environ if name.startswith("VAULTSCAN_")]:
        monkeypatch.delenv(name)
    configmap = one(render(value_set), "ConfigMap", "vs-vaultscan")
    path = tmp_path / "vaultscan.yaml"
    path.write_text(configmap["data"]["vaultscan.yaml"])
    settings = load_settings(path)
    assert settings.regions == values_of(value_set)["config"]["regions"]


# --- what the chart promises ------------------------------------------------------------


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_pods_are_hardened(value_set: str) -> None:
    specs = pod_specs(render(value_set))
    kinds = {name.split("/")[0] for name, _ in specs}
    optional = (
        {"CronJob"} if values_of(value_set).get("reportCronJob", {}).get("enabled") else set()
    )
    assert kinds == {"Deployment", "Job"} | optional
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert isinstance(pod["runAsUser"], int) and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, f"{name}: /tmp must be an emptyDir"
            assert container["resources"]["requests"] and container["resources"]["limits"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_database_url_comes_only_from_the_secret(value_set: str) -> None:
    docs = render(value_set)
    database = values_of(value_set)["database"]
    for name, spec in pod_specs(docs):
        env = {item["name"]: item for item in spec["containers"][0]["env"]}
        ref = env["VAULTSCAN_DATABASE__URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": database["existingSecret"], "key": database["secretKey"]}, name
    assert "postgresql" not in yaml.safe_dump_all(docs)


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_scanner_serves_probes_on_the_metrics_port(value_set: str) -> None:
    docs = render(value_set)
    values = values_of(value_set)
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve"]
    assert container["ports"] == [
        {"name": "metrics", "containerPort": values["metricsPort"], "protocol": "TCP"}
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["VAULTSCAN_METRICS__PORT"] == str(values["metricsPort"])
    assert env["VAULTSCAN_CONFIG"] == "/etc/vaultscan/vaultscan.yaml"
    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_migration_job_runs_before_everything_with_hook_dependencies(value_set: str) -> None:
    docs = render(value_set)
    job = one(docs, "Job")
    assert job["metadata"]["annotations"][HOOK] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in job["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    assert spec["containers"][0]["args"] == ["db", "upgrade"]
    assert spec["restartPolicy"] == "Never"
    job_weight = int(job["metadata"]["annotations"][HOOK_WEIGHT])
    hooks = {
        (doc["kind"], doc["metadata"]["name"]): int(doc["metadata"]["annotations"][HOOK_WEIGHT])
        for doc in docs
        if HOOK in doc["metadata"].get("annotations", {}) and doc["kind"] != "Job"
    }
    # the ConfigMap it mounts exists before it: a hook of lower weight
    configmap = next(v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v)
    assert hooks[("ConfigMap", configmap)] < job_weight
    account = spec["serviceAccountName"]
    if values_of(value_set)["serviceAccount"]["create"]:
        assert hooks[("ServiceAccount", account)] < job_weight
        sa = one(docs, "ServiceAccount", account)
        assert "eks.amazonaws.com/role-arn" not in sa["metadata"].get("annotations", {})
    else:
        assert account == values_of(value_set)["serviceAccount"]["name"]


def test_irsa_annotation_on_the_created_service_account() -> None:
    docs = render("monitoring-values")
    deployment = one(docs, "Deployment")
    name = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    account = one(docs, "ServiceAccount", name)
    assert (
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == (values_of("monitoring-values")["serviceAccount"]["roleArn"])
    )


def test_existing_service_account_is_used_not_created() -> None:
    docs = render("existing-sa-values")
    assert find(docs, "ServiceAccount") == []
    for name, spec in pod_specs(docs):
        assert spec["serviceAccountName"] == "vaultscan-scanner", name
        assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}], name
        image = spec["containers"][0]["image"]
        assert image.startswith("registry.example.com/platform/vaultscan@sha256:"), name
        env = {item["name"]: item for item in spec["containers"][0]["env"]}
        member = env["VAULTSCAN_MEMBER__EXTERNAL_ID"]["valueFrom"]["secretKeyRef"]
        assert member == {"name": "vaultscan-external-id", "key": "member"}
    assert find(docs, "PodDisruptionBudget") == []


def test_default_values_render_no_optional_objects() -> None:
    kinds = sorted(doc["kind"] for doc in render("default"))
    assert kinds == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "Job",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
        ]
    )


def test_network_policy_limits_traffic() -> None:
    docs = render("networkpolicy-values")
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6432, "TCP")}
    assert all("to" not in rule or rule["to"] for rule in policy["egress"])
    [ingress] = policy["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert ingress["from"] == values_of("networkpolicy-values")["networkPolicy"]["metricsFrom"]
    pdb = one(docs, "PodDisruptionBudget")["spec"]
    assert pdb == {"minAvailable": 1, "selector": pdb["selector"]}


def test_service_monitor_scrapes_the_metrics_service() -> None:
    docs = render("monitoring-values")
    monitor = one(docs, "ServiceMonitor")["spec"]
    service = one(docs, "Service")
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["selector"]["matchLabels"].items())
    assert monitor["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert monitor["endpoints"][0]["interval"] == "30s"


# --- the alert rules: one source --------------------------------------------------------


def test_chart_rules_file_is_a_link_to_the_exporters_rules() -> None:
    link = CHART_DIR / "files" / "vaultscan.rules.yml"
    assert link.is_symlink(), "the chart must link to exporters/rules, not hold a copy"
    assert link.resolve() == RULES_FILE.resolve()
    assert RULES_FILE.is_file(), f"{RULES_FILE.relative_to(REPO_ROOT)} is missing"


def test_prometheus_rule_renders_the_same_groups_as_the_rules_file() -> None:
    source = yaml.safe_load(RULES_FILE.read_text())
    rule = one(render("monitoring-values"), "PrometheusRule")
    assert rule["spec"]["groups"] == source["groups"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_packaged_chart_carries_the_rules_file_content(tmp_path: Path) -> None:
    run(tool("helm"), "package", str(CHART_DIR), "--destination", str(tmp_path))
    [package] = tmp_path.glob("vaultscan-*.tgz")
    with tarfile.open(package) as archive:
        member = archive.getmember("vaultscan/files/vaultscan.rules.yml")
        assert member.isfile(), "the package must hold the file, not a link"
        packaged = archive.extractfile(member).read()  # type: ignore[union-attr]
    assert packaged == RULES_FILE.read_bytes()


# --- operations options -------------------------------------------------------------------

DATABASE_URL_IN_VALUES = {
    "config.database.url": {"config": {"database": {"url": "postgresql://u:p@db/vaultscan"}}},
    "database.url": {
        "database": {"existingSecret": "vaultscan-db", "url": "postgresql://u:p@db/v"}
    },
    "extraEnv": {
        "extraEnv": [{"name": "VAULTSCAN_DATABASE__URL", "value": "postgresql://u:p@db/v"}]
    },
}


@pytest.mark.parametrize("where", sorted(DATABASE_URL_IN_VALUES))
def test_a_database_url_in_values_is_refused_with_an_explanation(
    where: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(DATABASE_URL_IN_VALUES[where]))
    result = run(tool("helm"), "template", "vs", str(CHART_DIR), "-f", str(path), check=False)
    assert result.returncode != 0
    assert f"{where}" in result.stderr
    assert "kubectl create secret generic vaultscan-db" in result.stderr
    assert "database.existingSecret" in result.stderr
    assert "u:p@db" not in result.stderr  # the message never repeats the credentials


def test_alerts_take_thresholds_severities_and_absolute_runbooks_from_values() -> None:
    source = {
        rule["alert"]: rule
        for group in yaml.safe_load(RULES_FILE.read_text())["groups"]
        for rule in group["rules"]
    }
    rendered = {
        rule["alert"]: rule
        for group in one(render("operations-values"), "PrometheusRule")["spec"]["groups"]
        for rule in group["rules"]
    }
    assert set(rendered) == set(source) - {"VaultscanScanFailed"}  # disabled
    for name, rule in rendered.items():
        relative = source[name]["annotations"]["runbook_url"]
        assert (
            rule["annotations"]["runbook_url"] == f"https://docs.example.com/vaultscan/{relative}"
        )
    compliance = rendered["VaultscanComplianceBelowThreshold"]
    assert compliance["expr"].rstrip().endswith("< 0.9")
    assert "Fewer than 90%" in compliance["annotations"]["description"]
    disagreement = rendered["VaultscanSimulatorDisagreement"]
    assert (disagreement["labels"]["severity"], disagreement["for"]) == ("warning", "30m")
    # everything not overridden is as in the rules file
    stale = dict(
        rendered["VaultscanScanStale"], annotations=source["VaultscanScanStale"]["annotations"]
    )
    assert stale == source["VaultscanScanStale"]


def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    configmap = one(render("operations-values"), "ConfigMap", "vs-vaultscan-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Security"}
    dashboard = json.loads(configmap["data"]["vaultscan.json"])
    source = json.loads((REPO_ROOT / "exporters" / "grafana" / "vaultscan.json").read_text())
    assert dashboard["panels"] == source["panels"]
    assert dashboard["templating"] == source["templating"]
    assert [link["url"] for link in dashboard["links"]] == [
        "https://docs.example.com/vaultscan/docs/operations.md"
    ]
    names = [doc["metadata"]["name"] for doc in find(render("default"), "ConfigMap")]
    assert "vs-vaultscan-dashboard" not in names  # off by default
    link = CHART_DIR / "files" / "vaultscan-dashboard.json"
    assert link.is_symlink(), "the chart must link to exporters/grafana, not hold a copy"


def test_extra_env_from_volumes_and_topology_spread() -> None:
    deployment = one(render("operations-values"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "vaultscan-credentials"}}]
    assert {"name": "ca", "configMap": {"name": "corporate-ca"}} in pod["volumes"]
    assert {"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True} in container[
        "volumeMounts"
    ]
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    # the selector defaults to the scanner's own pods
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_report_cronjob_delivers_with_the_scanners_config_and_secrets() -> None:
    docs = render("operations-values")
    cronjob = one(docs, "CronJob")
    assert cronjob["spec"]["schedule"] == "0 7 * * 1"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["report", "--deliver", "--days", "7"]
    env = {item["name"]: item for item in container["env"]}
    assert "secretKeyRef" in env["VAULTSCAN_DATABASE__URL"]["valueFrom"]
    assert container["envFrom"] == [{"secretRef": {"name": "vaultscan-credentials"}}]
    # the same configuration the scanner reads, with the report's delivery in it
    configmap = one(docs, "ConfigMap", "vs-vaultscan")
    assert {"name": "config", "configMap": {"name": "vs-vaultscan"}} in pod["volumes"]
    assert "s3://vaultscan-reports/weekly/" in configmap["data"]["vaultscan.yaml"]
    assert (
        pod["serviceAccountName"]
        == one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    )
    names = [doc["kind"] for doc in render("default")]
    assert "CronJob" not in names


def test_an_smtp_password_in_values_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"config": {"report": {"delivery": {"email": {"password": "pw"}}}}})
    )
    result = run(tool("helm"), "template", "vs", str(CHART_DIR), "-f", str(path), check=False)
    assert result.returncode != 0 and "report" in result.stderr
