"""SNI routing: one TLS port for the bootstrap and every broker, told apart by the name in the handshake.

Kafka's Java client resolves the names through a hosts file the JVM is given (-Djdk.net.hosts.file, its
own resolver hook), so the test needs no DNS and changes nothing on the machine: the names map to
127.0.0.1 and the client sends them as SNI, as it would through a load balancer in TCP passthrough.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tenantry.localkafka.broker import free_port
from tenantry.localkafka.certs import Authority

from .conftest import RunningProxy, start_proxy, stop_checked, unique, write_tenants
from .test_java_client import run_java

pytestmark = pytest.mark.integration
DOMAIN = "kafka.tenantry.test"
PATTERN = f"broker-{{id}}.{DOMAIN}"
BOOTSTRAP = f"bootstrap.{DOMAIN}"


@pytest.fixture(scope="module")
def sni_proxy(kafka, tmp_path_factory) -> Iterator[tuple[RunningProxy, Authority]]:
    workdir = tmp_path_factory.mktemp("sni-proxy")
    authority = Authority(workdir / "ca")
    server = authority.issue("proxy", BOOTSTRAP, hosts=(BOOTSTRAP, f"*.{DOMAIN}"))
    config = workdir / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_SSL",
                        "--ssl-certfile", str(server.cert), "--ssl-keyfile", str(server.key),
                        "--advertised-host", BOOTSTRAP, "--sni-broker-host-pattern", PATTERN,
                        "--metrics-listen", f"127.0.0.1:{free_port()}",
                        tls=True, broker_listeners=False)
    try:
        yield proxy, authority
    finally:
        stop_checked(proxy)


def hosts_file(path, port_names: list[str]):
    path.write_text("".join(f"127.0.0.1 {name}\n" for name in port_names))
    return path


def test_java_clients_reach_every_broker_through_one_port(sni_proxy, tmp_path):
    proxy, authority = sni_proxy
    hosts = hosts_file(tmp_path / "hosts", [BOOTSTRAP, *(PATTERN.replace("{id}", str(n)) for n in range(1, 4))])
    java = {"login": "alice", "truststore": str(authority.cert_file), "jvm": (f"-Djdk.net.hosts.file={hosts}",)}
    bootstrap = f"{BOOTSTRAP}:{proxy.port}"
    out = run_java("produce-consume", bootstrap, unique("sni"), **java)
    assert "OK consumed 500" in out and "OK committed 500" in out
    admin = run_java("admin", bootstrap, unique("sni-admin"), **java)
    nodes = {line.split()[1] for line in admin.splitlines() if line.startswith("NODE ")}
    assert nodes == {f"{PATTERN.replace('{id}', '1')}:{proxy.port}"}  # the broker, by name, on the one port
    listening = {c.laddr.port for c in psutil.Process(proxy.process.pid).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN}
    metrics_port = int(proxy.process.args[proxy.process.args.index("--metrics-listen") + 1].rsplit(":", 1)[1])
    assert listening - {metrics_port} == {proxy.port}, "SNI routing opens no port per broker"


def upstream_connects(metrics: str) -> dict[str, float]:
    """tenantry_upstream_connects_total by broker label ("bootstrap" or a node id)."""
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {sample.labels["broker"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "tenantry_upstream_connects_total"}


def test_the_handshake_name_picks_the_broker(sni_proxy, tmp_path):
    """With one broker every request would reach it anyway; the proxy's own counts show the routing: the
    connections that named broker 1 opened their broker connections as broker 1's, not the bootstrap's."""
    proxy, authority = sni_proxy
    metrics = proxy.process.args[proxy.process.args.index("--metrics-listen") + 1]
    before = upstream_connects(metrics)
    hosts = hosts_file(tmp_path / "hosts", [BOOTSTRAP, PATTERN.replace("{id}", "1")])
    out = run_java("produce-consume", f"{BOOTSTRAP}:{proxy.port}", unique("sni-route"), login="alice",
                   truststore=str(authority.cert_file), jvm=(f"-Djdk.net.hosts.file={hosts}",))
    assert "OK consumed 500" in out
    after = upstream_connects(metrics)
    assert after.get("1", 0) > before.get("1", 0)
