"""deploy/: the dashboard, alert rules, scrape configs, Kubernetes manifests and systemd unit are valid and
refer only to metrics, settings and endpoints the proxy has."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import tomllib
from dataclasses import fields

import pytest
import yaml

from tenantry.proxy.config import ProxyConfig, env_name, load_config
from tenantry.proxy.metrics import build_registry, take_view
from tenantry.proxy.server import ProxyServer
from tenantry.tenants.registry import Registry
from tests.deploy_refs import ALERTS, DASHBOARD, DEPLOY, alert_exprs, dashboard_exprs, deploy_metric_names

PROMETHEUS = DEPLOY / "prometheus"
KUBERNETES = DEPLOY / "kubernetes"
ENV_NAMES = {env_name(f.name) for f in fields(ProxyConfig)}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make system-deps` installs Debian's prometheus package"
    return subprocess.run([tool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)


def served_metric_families() -> set[str]:
    """Every metric family the proxy's /metrics can serve (a family is listed even before it has samples)."""
    server = ProxyServer(load_config(overrides={"upstream": ["127.0.0.1:9092"], "quota_coordination": "kafka"}),
                         Registry())  # quota coordination's families too
    server.stats.label_limit = 1  # the optional client id and topic families too
    families = {m.name for m in build_registry(take_view(server)).collect()}
    # The probe's families come from the probe; it is not running in a server built like this.
    from tenantry.proxy.probe import PROBE_FAMILIES

    return families | PROBE_FAMILIES


def test_alert_rules_pass_promtool_check():
    result = promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_their_unit_tests_expect():
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_passes_promtool_check():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_kubernetes_scrape_job_keeps_the_pods_metrics_port():
    job = yaml.safe_load((PROMETHEUS / "scrape-kubernetes.yml").read_text())["scrape_configs"][0]
    keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep["__meta_kubernetes_pod_container_port_name"] == "metrics"
    assert keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == "tenantry"


def test_dashboard_and_alerts_use_only_metrics_the_proxy_serves():
    used = deploy_metric_names()
    assert len(used) > 20
    missing = sorted(used - served_metric_families())
    assert not missing, f"deploy/ refers to metrics the proxy does not have: {missing}"


def test_dashboard_is_grafana_json_with_a_tenant_and_a_fleet_view():
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Tenant: $tenant", "Fleet"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "instance", "tenant"}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    per_tenant = [e for e in dashboard_exprs() if 'tenant=~"$tenant"' in e]
    for metric in ("tenantry_bytes_in_total", "tenantry_request_latency_seconds_bucket",
                   "tenantry_throttle_seconds_total", "tenantry_response_errors_total", "tenantry_connections_active"):
        assert any(metric in e for e in per_tenant), metric


def test_process_metrics_on_the_dashboard_are_the_proxys_own_job():
    # process_* families come from every Python exporter: without the job, another service on the same
    # instance would be drawn as a proxy replica.
    shared = [e for e in dashboard_exprs() if "process_" in e]
    assert shared and all('job=~"$job"' in e for e in shared)


OPERATOR = KUBERNETES / "prometheus-operator"
RULE_HEADER = ("# The alert rules of deploy/prometheus/alerts.yml for the Prometheus operator. Generated from that "
               "file;\n# `make test` checks that the two hold the same rules. Regenerate after changing alerts.yml:\n"
               "#   python -m tests.unit.test_deploy\n")


def prometheus_rule_text() -> str:
    rules = yaml.safe_load(ALERTS.read_text())
    doc = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "tenantry"},
           "spec": {"groups": rules["groups"]}}
    return RULE_HEADER + yaml.safe_dump(doc, sort_keys=False, width=110)


def test_the_prometheus_rule_holds_exactly_the_alert_rules():
    rule = OPERATOR / "prometheusrule.yaml"
    assert yaml.safe_load(rule.read_text())["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]
    assert rule.read_text() == prometheus_rule_text(), "regenerate: python -m tests.unit.test_deploy"


def test_the_service_monitor_scrapes_the_services_metrics_port():
    monitor = yaml.safe_load((OPERATOR / "servicemonitor.yaml").read_text())
    service = manifests()["Service"]
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    service_labels = {**service["metadata"].get("labels", {}), **kustomization["labels"][0]["pairs"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    assert 'job=~"tenantry.*"' in ALERTS.read_text() and service["metadata"]["name"].startswith("tenantry")
    listed = set(yaml.safe_load((OPERATOR / "kustomization.yaml").read_text())["resources"])
    assert listed == {"servicemonitor.yaml", "prometheusrule.yaml"}


def test_every_alert_the_issue_names_exists():
    exprs = " ".join(alert_exprs())
    for metric in ("tenantry_authentications_total", "tenantry_quota_utilisation_ratio", "tenantry_upstream_up",
                   "tenantry_event_loop_lag_seconds_bucket"):
        assert metric in exprs


def manifests() -> dict[str, dict]:
    docs = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def test_kubernetes_manifests_parse_and_list_each_other():
    docs = manifests()
    assert set(docs) == {"Kustomization", "ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}
    listed = set(docs["Kustomization"]["resources"])
    assert listed == {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}


def test_deployment_probes_hit_the_health_endpoints_on_the_metrics_port():
    docs = manifests()
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    settings = docs["ConfigMap"]["data"]
    assert ports["metrics"] == int(settings["TENANTRY_METRICS_LISTEN"].rsplit(":", 1)[1])
    assert ports["kafka"] == int(settings["TENANTRY_LISTEN"].rsplit(":", 1)[1])
    base = int(settings["TENANTRY_BROKER_PORT_BASE"])
    assert all(ports[f"broker-{n}"] == base + n for n in (1, 2, 3))
    # The grace period outlasts the proxy's own drain deadline.
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(settings["TENANTRY_SHUTDOWN_TIMEOUT_SECONDS"])
    service_targets = {p["targetPort"] for p in docs["Service"]["spec"]["ports"]}
    assert service_targets <= set(ports)


def test_configmap_and_secret_hold_settings_the_proxy_knows():
    docs = manifests()
    settings = docs["ConfigMap"]["data"]
    assert set(settings) <= ENV_NAMES, set(settings) - ENV_NAMES
    secret = {"TENANTRY_UPSTREAM_SASL_PASSWORD": docs["Secret"]["stringData"]["upstream-sasl-password"]}
    config = load_config(environ={**settings, **secret})  # the same validation the proxy runs at start
    assert config.tenants_enabled and config.metrics_listen
    tenants = tomllib.loads(docs["Secret"]["stringData"]["tenantry.toml"])
    assert Registry.from_config(tenants).tenants
    env = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"] for e in env} <= ENV_NAMES


def test_systemd_unit_runs_serve_with_known_settings():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "tenantry.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("tenantry serve")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillSignal"] == "SIGTERM"
    env_lines = (DEPLOY / "systemd" / "tenantry.service").read_text().splitlines()
    names = {line.split("=", 2)[1] for line in env_lines if line.startswith("Environment=")}
    assert names <= ENV_NAMES | {"TENANTRY_CONFIG"}, names - ENV_NAMES


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    text = (DEPLOY / "systemd" / "tenantry.service").read_text()
    unit = tmp_path / "tenantry.service"
    unit.write_text(text.replace("/opt/tenantry/bin/tenantry", shutil.which("true") or "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if str(unit.name) in line]
    assert result.returncode == 0 and not problems, result.stderr


if __name__ == "__main__":
    (OPERATOR / "prometheusrule.yaml").write_text(prometheus_rule_text())


def test_the_sni_overlay_serves_every_broker_on_the_one_port(tmp_path):
    """deploy/kubernetes/sni: its settings pass the proxy's own validation over the base's (with real files
    for the certificate), and its patches remove exactly the per-broker ports."""
    from tenantry.localkafka.certs import Authority

    overlay = KUBERNETES / "sni"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../"]
    patches = {p["path"]: yaml.safe_load((overlay / p["path"]).read_text()) for p in kustomization["patches"]}
    base = manifests()
    for patch in patches.values():
        assert base[patch["kind"]]["metadata"]["name"] == patch["metadata"]["name"]
    settings = {**base["ConfigMap"]["data"], **patches["configmap-patch.yaml"]["data"]}
    certificate = Authority(tmp_path).issue("listener", "bootstrap.kafka.example.com",
                                            hosts=("bootstrap.kafka.example.com", "*.kafka.example.com"))
    assert settings["TENANTRY_SSL_CERTFILE"].startswith("/etc/tenantry/tls/")
    settings.update(TENANTRY_SSL_CERTFILE=str(certificate.cert), TENANTRY_SSL_KEYFILE=str(certificate.key),
                    TENANTRY_UPSTREAM_SASL_PASSWORD="x")
    config = load_config(environ=settings)
    assert config.sni_broker_host_pattern == "broker-{id}.kafka.example.com"
    container = base["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    per_broker = {p["containerPort"] for p in container["ports"] if p["name"].startswith("broker-")}
    patched = patches["deployment-patch.yaml"]["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {p["containerPort"] for p in patched if p.get("$patch") == "delete"} == per_broker
    service = {p["port"] for p in base["Service"]["spec"]["ports"] if p["name"].startswith("broker-")}
    assert {p["port"] for p in patches["service-patch.yaml"]["spec"]["ports"] if p.get("$patch") == "delete"} \
        == service
    mounts = patches["deployment-patch.yaml"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == ["/etc/tenantry/tls"]
