"""Operations with real clients and a real broker: metrics after two tenants' traffic, health, status, logs.

Every metric the Grafana dashboard and the alert rules in deploy/ use must be served, with the
labels they filter on, and with values that match the traffic the test made.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from tenantry.localkafka.broker import free_port
from tenantry.protocol.envelope import request_frame
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tests.deploy_refs import deploy_metric_names

from .conftest import RunningProxy, client_config, start_proxy, stop_checked, unique, write_tenants
from .helpers import wait_for
from .rawclient import closed_by_peer, connect
from .test_tenant_isolation import consume, create, produce

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(proxy_url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """sample name -> [(labels, value)] from /metrics."""
    status, body = get(proxy_url + "/metrics")
    assert status == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items()))


@pytest.fixture(scope="module")
def ops_proxy(kafka, tmp_path_factory) -> Iterator[tuple[RunningProxy, str]]:
    workdir = tmp_path_factory.mktemp("ops-proxy")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    # A quota far above what the test sends, so acme has quota series without being slowed.
    subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", "quota", "set", "acme", "--produce-bytes-per-sec",
                    "50000000", "--config", str(config)], check=True, capture_output=True)
    port = free_port()
    running = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                          "--auth-failure-delay-ms", "100", "--metrics-listen", f"127.0.0.1:{port}",
                          "--metrics-label-limit", "5", "--health-check-interval-seconds", "1",
                          "--log-format", "json", "--probe-tenants", "acme", "--probe-interval-seconds", "1",
                          # a fleet of one, so that quota coordination's series are served (and alone, it gives
                          # this replica every limit whole)
                          "--quota-coordination", "kafka", "--quota-coordination-topic", unique("ops-fleet"))
    try:
        yield running, f"http://127.0.0.1:{port}"
    finally:
        stop_checked(running)


@pytest.fixture(scope="module")
def traffic(ops_proxy) -> dict[str, object]:
    """Two tenants produce and consume; one wrong password for each."""
    proxy, _ = ops_proxy
    made: dict[str, object] = {}
    for user, count in (("alice", 30), ("bob", 12)):
        config = client_config(proxy, user)
        topic = unique("ops")
        create(config, topic)
        produce(config, topic, [b"x" * 100] * count, **{"client.id": f"app-{user}", "linger.ms": 0})
        assert len(consume(config, topic, unique("g"), count)) == count
        refused = Producer(client_config(proxy, user, password="wrong-password-1234"))
        refused.produce(topic, b"never")
        assert refused.flush(3) == 1  # still queued: every login was refused
        made[user] = (topic, count)
    return made


def test_every_metric_the_dashboard_and_alerts_use_is_served(ops_proxy, traffic):
    _, url = ops_proxy
    samples = wait_for(lambda: (s := scrape(url)) and "tenantry_upstream_up" in s and s, 30,
                       "a health check to have run")
    names = set(samples)
    missing = [m for m in sorted(deploy_metric_names()) if not ({m, m + "_total", m + "_bucket"} & names)]
    assert not missing, f"deploy/ uses metrics /metrics does not serve: {missing}"
    for tenant in ("acme", "globex"):
        for metric in ("tenantry_bytes_in_total", "tenantry_bytes_out_total", "tenantry_records_in_total",
                       "tenantry_requests_total", "tenantry_request_latency_seconds_bucket",
                       "tenantry_connections_opened_total", "tenantry_authentications_total"):
            assert value(samples, metric, tenant=tenant) > 0, (metric, tenant)


def test_metrics_match_the_traffic(ops_proxy, traffic):
    _, url = ops_proxy
    samples = scrape(url)
    for user, tenant in (("alice", "acme"), ("bob", "globex")):
        topic, count = traffic[user]
        assert value(samples, "tenantry_records_in_total", tenant=tenant) >= count  # acme's probe produces too
        assert value(samples, "tenantry_topic_records_in_total", tenant=tenant, topic=topic) == count
        assert value(samples, "tenantry_client_id_requests_total", tenant=tenant, client_id=f"app-{user}") > 0
        assert value(samples, "tenantry_bytes_in_total", tenant=tenant) > count * 100
        assert value(samples, "tenantry_bytes_out_total", tenant=tenant) > count * 100
        assert value(samples, "tenantry_requests_total", tenant=tenant, api="Produce") >= 1
        assert value(samples, "tenantry_requests_total", tenant=tenant, api="Fetch") >= 1
        assert value(samples, "tenantry_authentications_total", tenant=tenant, result="success") >= 3
        assert value(samples, "tenantry_authentications_total", tenant=tenant, result="failure") >= 1
        for stage in ("proxy", "upstream"):
            count_ = value(samples, "tenantry_request_latency_seconds_count", tenant=tenant, stage=stage)
            total = value(samples, "tenantry_request_latency_seconds_sum", tenant=tenant, stage=stage)
            assert count_ > 0 and 0 < total / count_ < 1.0, (tenant, stage, count_, total)
    # The broker said UNKNOWN_TOPIC_OR_PARTITION or similar nowhere; the proxy's own errors are counted:
    assert value(samples, "tenantry_response_errors_total", api="SaslAuthenticate",
                 error="SASL_AUTHENTICATION_FAILED") >= 2
    assert value(samples, "tenantry_upstream_up", broker="bootstrap") == 1
    assert value(samples, "tenantry_upstream_up", broker="1") == 1
    assert value(samples, "tenantry_upstream_connects_total") > 0
    assert value(samples, "tenantry_event_loop_lag_seconds_count") > 0
    assert value(samples, "process_resident_memory_bytes") > 10_000_000
    assert value(samples, "tenantry_ready") == 1


def test_the_probe_reports_acme_available_with_its_end_to_end_latency(ops_proxy):
    _, url = ops_proxy
    samples = wait_for(lambda: (s := scrape(url)) and value(s, "tenantry_probe_latency_seconds_count",
                                                             tenant="acme") >= 3 and s, 60, "three probe rounds")
    assert value(samples, "tenantry_probe_up", tenant="acme") == 1
    count = value(samples, "tenantry_probe_latency_seconds_count", tenant="acme")
    assert 0 < value(samples, "tenantry_probe_latency_seconds_sum", tenant="acme") / count < 1.0
    assert "globex" not in {labels.get("tenant") for labels, _ in samples.get("tenantry_probe_up", [])}
    # The probe is a tenant's client like any other: its topic is in acme's namespace, not globex's.
    proxy, _ = ops_proxy
    from confluent_kafka.admin import AdminClient

    assert "tenantry-probe" in AdminClient(client_config(proxy, "alice")).list_topics(timeout=10).topics
    assert "tenantry-probe" not in AdminClient(client_config(proxy, "bob")).list_topics(timeout=10).topics


def test_health_and_readiness(ops_proxy):
    _, url = ops_proxy
    status, body = get(url + "/healthz")
    assert status == 200 and json.loads(body)["alive"] is True
    status, body = get(url + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True


def test_status_command_shows_tenants_connections_and_quota_use(ops_proxy, traffic):
    proxy, url = ops_proxy
    producer = Producer(client_config(proxy, "alice"))  # one connection held open while status runs
    producer.list_topics(timeout=10)
    try:
        out = subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", "status", "--url", url],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines: dict[str, str] = {}
        for line in out.stdout.splitlines():  # a tenant's first line is its row of the table (the fleet's follow)
            if line.strip():
                lines.setdefault(line.split()[0], line)
        assert "acme" in lines and "globex" in lines, out.stdout
        assert int(lines["acme"].split()[1]) >= 1, out.stdout
        assert "broker 1: up" in out.stdout
        raw = json.loads(subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", "status", "--url", url, "--json"],
                                        capture_output=True, text=True, timeout=30, check=True).stdout)
        acme = next(t for t in raw["tenants"] if t["tenant"] == "acme")
        assert acme["users"].get("alice", 0) >= 1
    finally:
        producer.flush(5)


def test_json_logs_carry_the_tenant_and_never_a_password(ops_proxy, traffic):
    proxy, _ = ops_proxy
    records = [json.loads(line) for line in proxy.log_text().splitlines() if line.startswith("{")]
    assert records, proxy.log_text()[-2000:]
    logins = [r for r in records if "logged in as" in r["message"]]
    assert {(r.get("tenant"), r.get("user")) for r in logins} >= {("acme", "alice"), ("globex", "bob")}
    assert all(r.get("peer") for r in logins)
    text = proxy.log_text()
    for secret in ("alice-secret", "bob-secret", "wrong-password-1234"):
        assert secret not in text


def test_a_log_line_about_one_request_names_its_api(ops_proxy):
    proxy, _ = ops_proxy
    sock = connect(proxy.bootstrap)
    sock.sendall(request_frame(MetadataRequest(topics=[]), 12, 1, "nosy-app"))  # before logging in
    assert closed_by_peer(sock)

    def refusal() -> dict[str, str] | None:
        for line in proxy.log_text().splitlines():
            if line.startswith("{") and "before authentication" in line:
                return json.loads(line)
        return None
    record = wait_for(refusal, 10, "the refusal's log line")
    assert record["api"] == "Metadata" and record["peer"]
