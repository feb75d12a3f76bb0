"""Kafka's own Java client (the version the broker runs) through the proxy."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tenantry.localkafka import kafka_classpath

from .conftest import GROUP_PROTOCOLS, KAFKA_VERSION, TENANT_USERS, unique

pytestmark = pytest.mark.integration
PROGRAM = Path(__file__).parents[1] / "java" / "ClientScenarios.java"
PROTOCOLS = GROUP_PROTOCOLS


def run_java(*args: str, login: str | None = None, sasl: str | None = None, truststore: str | None = None,
             jvm: tuple[str, ...] = (), oauth: str | None = None) -> str:
    """Run a scenario; `login` is one of TENANT_USERS to log in to a tenant proxy with (or give `sasl`
    as MECHANISM:user:password, or `oauth` as "token endpoint|client id|scope"); `truststore`, a PEM CA
    file, makes it TLS; `jvm` adds JVM options."""
    env = dict(os.environ)
    if oauth is not None:
        env["TENANTRY_OAUTH"] = oauth
    if truststore is not None:
        env["TENANTRY_TRUSTSTORE"] = truststore
    if login is not None:
        _, mechanism, password = TENANT_USERS[login]
        env["TENANTRY_SASL"] = f"{mechanism}:{login}:{password}"
    if sasl is not None:
        env["TENANTRY_SASL"] = sasl
    result = subprocess.run(
        ["java", "-Xmx256m", *jvm, "-cp", kafka_classpath(KAFKA_VERSION), str(PROGRAM), *args],
        capture_output=True, text=True, timeout=180, check=False, env=env)
    assert result.returncode == 0, f"Java scenario {args[0]} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result.stdout


def test_java_produce_consume_idempotent_and_commit(proxy):
    out = run_java("produce-consume", proxy.bootstrap, unique("java"))
    assert "OK consumed 500" in out and "OK committed 500" in out


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_java_group_of_two_rebalances(proxy, protocol):
    assert f"OK rebalanced {protocol}" in run_java("group", proxy.bootstrap, unique("java-g"), protocol)


def test_java_transactions_with_read_committed(proxy):
    assert "OK transactions" in run_java("transactions", proxy.bootstrap, unique("java-tx"))


def test_java_admin_sees_only_the_proxy(proxy):
    out = run_java("admin", proxy.bootstrap, unique("java-admin"))
    assert "OK admin" in out
    nodes = {line.split()[1] for line in out.splitlines() if line.startswith("NODE ")}
    assert nodes == {f"127.0.0.1:{proxy.broker_port_base + 1}"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_java_tenants_with_the_same_names_and_both_group_protocols(tenant_proxy, kafka, protocol):
    topic = unique("java-t")
    for user in ("alice", "bob"):  # the same topic name in both tenants, one after the other
        out = run_java("produce-consume", tenant_proxy.bootstrap, topic, login=user)
        assert "OK consumed 500" in out and "OK committed 500" in out
        assert f"OK rebalanced {protocol}" in run_java("group", tenant_proxy.bootstrap, topic + "-g", protocol,
                                                         login=user)
    assert "OK transactions" in run_java("transactions", tenant_proxy.bootstrap, topic + "-tx", login="alice")


def test_java_admin_in_a_tenant(tenant_proxy):
    out = run_java("admin", tenant_proxy.bootstrap, unique("java-tadmin"), login="bob")
    assert "OK admin" in out
    assert {line.split()[1] for line in out.splitlines() if line.startswith("NODE ")} == {
        f"127.0.0.1:{tenant_proxy.broker_port_base + 1}"}
