"""The proxy reaches brokers over TLS: SASL_SSL (a managed Kafka's TLS + SCRAM) and SSL with a client
certificate (mTLS), against a real broker whose TLS listeners `tenantry kafka start --tls` made; a broker
whose certificate the CA did not sign is never talked to."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from tenantry.localkafka.broker import AUTHORIZER, SERVICE_PASSWORD, SERVICE_USER, free_port
from tenantry.localkafka.certs import Authority
from tenantry.localkafka.cluster import KafkaCluster

from .conftest import (
    KAFKA_VERSION,
    REAUTH_MS,
    RunningProxy,
    client_config,
    start_proxy,
    stop_checked,
    unique,
    write_tenants,
)
from .helpers import readiness, wait_for
from .test_tenant_isolation import consume, create, produce
from .test_upstream_reauth import produce_across_broker_sessions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One broker with TLS listeners, an authorizer (so an mTLS principal must map to the super user) and
    short SASL sessions (so the proxy re-authenticates over TLS during the tests)."""
    cluster = KafkaCluster(tmp_path_factory.mktemp("tls-kafka"), tls=True, version=KAFKA_VERSION,
                           extra_properties={**AUTHORIZER, "connections.max.reauth.ms": str(REAUTH_MS)})
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def sasl_ssl_flags(cluster: KafkaCluster, cafile: str | None = None) -> tuple[str, ...]:
    return ("--upstream-security-protocol", "SASL_SSL", "--upstream-sasl-mechanism", "SCRAM-SHA-512",
            "--upstream-sasl-username", SERVICE_USER, "--upstream-ssl-cafile", cafile or str(cluster.ca_file))


def upstream_ports(proxy: RunningProxy) -> set[int]:
    """The remote ports of the proxy's own outgoing connections (its listeners' accepted ones left out)."""
    return {c.raddr.port for c in psutil.Process(proxy.process.pid).net_connections("tcp")
            if c.raddr and c.laddr.port not in proxy.ports}


def tenant_round_trip(proxy: RunningProxy, messages: int = 3) -> None:
    settings = client_config(proxy, "alice")
    topic = unique("tls-up")
    create(settings, topic)
    values = [f"m{i}".encode() for i in range(messages)]
    produce(settings, topic, values)
    assert consume(settings, topic, unique("g"), messages) == values


def test_tenant_mode_over_sasl_ssl(tls_cluster, tmp_path):
    """TLS + SCRAM upstream: tenants round-trip, every broker connection is on the SASL_SSL port, and the
    proxy logs in again over TLS when the broker's session expires (KIP-368)."""
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(None, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        upstream=tls_cluster.bootstrap("sasl_ssl"), upstream_flags=sasl_ssl_flags(tls_cluster))
    try:
        tenant_round_trip(proxy)
        sasl_ssl = int(tls_cluster.bootstrap("sasl_ssl").rsplit(":", 1)[1])
        assert upstream_ports(proxy) == {sasl_ssl}
        settings = client_config(proxy, "alice")
        topic = unique("tls-reauth")
        create(settings, topic)
        assert produce_across_broker_sessions(settings, topic) > 10
        assert "re-authenticated to the broker" in proxy.log_text()
    finally:
        stop_checked(proxy)


def test_mtls_upstream_with_a_client_certificate(tls_cluster, tmp_path):
    """SSL with a client certificate: the broker requires one on that listener and maps its CN to the
    service user, whom its authorizer lets do everything; without it the broker gives the proxy nothing."""
    described = tls_cluster.description()
    flags = ("--upstream-security-protocol", "SSL", "--upstream-ssl-cafile", str(tls_cluster.ca_file),
             "--upstream-ssl-certfile", described["client_certfile"],
             "--upstream-ssl-keyfile", described["client_keyfile"])
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(None, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        upstream=tls_cluster.bootstrap("ssl"), upstream_flags=flags)
    try:
        tenant_round_trip(proxy)
        assert upstream_ports(proxy) == {int(tls_cluster.bootstrap("ssl").rsplit(":", 1)[1])}
    finally:
        stop_checked(proxy)


@pytest.mark.parametrize("case", ["foreign CA", "no client certificate"])
def test_a_broker_the_proxy_cannot_trust_or_that_wants_a_certificate_leaves_it_unready(tls_cluster, tmp_path, case):
    """Against a broker whose certificate another CA signed, or an mTLS listener without a client certificate,
    the proxy stays up and not ready, and /readyz says which broker failed and why."""
    if case == "foreign CA":
        upstream = tls_cluster.bootstrap("sasl_ssl")
        flags = sasl_ssl_flags(tls_cluster, str(Authority(tmp_path / "other-ca").cert_file))
    else:
        upstream = tls_cluster.bootstrap("ssl")
        flags = ("--upstream-security-protocol", "SSL", "--upstream-ssl-cafile", str(tls_cluster.ca_file))
    metrics, log = f"127.0.0.1:{free_port()}", tmp_path / "proxy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tenantry.proxy.cli", "serve", "--upstream", upstream, *flags,
             "--listener-security-protocol", "PLAINTEXT", "--listen", f"127.0.0.1:{free_port()}",
             "--metrics-listen", metrics, "--upstream-connect-timeout-seconds", "5"],
            stdout=out, stderr=subprocess.STDOUT,
            env=dict(os.environ, TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD))
    try:
        wait_for(lambda: "retrying" in log.read_text(), 30, "a failed first attempt")
        status, why = readiness(metrics)
        assert status == 503 and why["started"] is False and f"broker {upstream}" in str(why)
        if case == "foreign CA":
            assert "certificate verify failed" in str(why)
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert code == 0, log.read_text()


def test_sighup_reloads_the_upstream_files_and_refuses_broken_ones(tls_cluster, tmp_path):
    """A rotation that leaves a broken CA file is refused (the files loaded before stay in force, new broker
    connections still verify); once the file is whole again, SIGHUP loads it."""
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(tls_cluster.ca_file.read_bytes())
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(None, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        upstream=tls_cluster.bootstrap("sasl_ssl"), upstream_flags=sasl_ssl_flags(tls_cluster,
                                                                                                  str(cafile)))
    try:
        cafile.write_text("-----BEGIN CERTIFICATE-----\ntruncated")
        proxy.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "upstream TLS reload refused" in proxy.log_text(), 15, "the refusal logged")
        tenant_round_trip(proxy, 1)  # new connections to the broker still verify with the CA loaded before
        cafile.write_bytes(tls_cluster.ca_file.read_bytes())
        proxy.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded upstream TLS files" in proxy.log_text(), 15, "the reload logged")
        time.sleep(0.2)
        tenant_round_trip(proxy, 1)
    finally:
        stop_checked(proxy)
