"""Kafka's own Java client (the version the broker runs) through the proxy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tenantry.localkafka import kafka_classpath

from .conftest import KAFKA_VERSION, unique

pytestmark = pytest.mark.integration
PROGRAM = Path(__file__).parents[1] / "java" / "ClientScenarios.java"
# KIP-848's group.protocol=consumer is generally available from Kafka 4.0.
PROTOCOLS = ["classic", "consumer"] if int(KAFKA_VERSION.split(".")[0]) >= 4 else ["classic"]


def run_java(*args: str) -> str:
    result = subprocess.run(
        ["java", "-Xmx256m", "-cp", kafka_classpath(KAFKA_VERSION), str(PROGRAM), *args],
        capture_output=True, text=True, timeout=180, check=False)
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
