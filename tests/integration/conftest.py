"""A real Kafka broker (from Maven Central jars) and the proxy as a real process, shared by the session.

The broker re-authenticates SASL sessions every few seconds (connections.max.reauth.ms), so every
integration test also exercises the proxy's KIP-368 re-login to the broker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenantry.localkafka import DEFAULT_VERSION, KafkaBroker
from tenantry.localkafka.broker import SERVICE_PASSWORD, SERVICE_USER, api_versions_answers, free_port

KAFKA_VERSION = os.environ.get("TENANTRY_TEST_KAFKA_VERSION", DEFAULT_VERSION)
REAUTH_MS = 6000
# KIP-848's consumer group protocol (group.protocol=consumer) is generally available from Kafka 4.0.
KIP848 = int(KAFKA_VERSION.split(".")[0]) >= 4
GROUP_PROTOCOLS = ["classic", "consumer"] if KIP848 else ["classic"]
needs_kip848 = pytest.mark.skipif(not KIP848, reason=f"KIP-848 groups are not GA in Kafka {KAFKA_VERSION}")

pytestmark = pytest.mark.integration


@dataclass
class RunningProxy:
    process: subprocess.Popen[bytes]
    bootstrap: str
    port: int
    broker_port_base: int
    log: Path

    @property
    def ports(self) -> set[int]:
        return {self.port} | {self.broker_port_base + n for n in range(0, 16)}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), version=KAFKA_VERSION,
                         extra_properties={"connections.max.reauth.ms": str(REAUTH_MS)})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def start_proxy(kafka: KafkaBroker | None, workdir: Path, *extra: str, upstream: str | None = None,
                mechanism: str = "SCRAM-SHA-512", tls: bool = False,
                upstream_flags: tuple[str, ...] | None = None, broker_listeners: bool = True) -> RunningProxy:
    """The proxy as its own process, logging in to the broker's SASL listener (or to `upstream`, with
    `upstream_flags` instead of the SASL_PLAINTEXT ones); `broker_listeners` False: no port per broker (SNI)."""
    port = free_port()
    base = free_port() - 1  # broker 1 is served on base + 1, a port known to be free
    log = workdir / f"proxy-{port}.log"
    env = dict(os.environ, TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD)
    if "--listener-security-protocol" not in extra:
        extra = ("--listener-security-protocol", "PLAINTEXT", *extra)  # a transparent proxy, chosen explicitly
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tenantry.proxy.cli", "serve",
             "--upstream", upstream or (kafka.sasl_bootstrap if kafka else ""),
             *(upstream_flags if upstream_flags is not None else (
                 "--upstream-security-protocol", "SASL_PLAINTEXT", "--upstream-sasl-mechanism", mechanism,
                 "--upstream-sasl-username", SERVICE_USER)),
             "--listen", f"127.0.0.1:{port}",
             "--broker-port-base", str(base), "--log-level", "DEBUG", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while not (listening("127.0.0.1", port) and (not broker_listeners or listening("127.0.0.1", base + 1))) \
            if tls else (
            not api_versions_answers("127.0.0.1", port) or not api_versions_answers("127.0.0.1", base + 1)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"proxy did not start:\n{log.read_text()}")
        time.sleep(0.1)
    return RunningProxy(process, f"127.0.0.1:{port}", port, base, log)


def listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def stop_proxy(proxy: RunningProxy) -> int:
    if proxy.process.poll() is None:
        proxy.process.send_signal(signal.SIGTERM)
        try:
            proxy.process.wait(30)
        except subprocess.TimeoutExpired:
            proxy.process.kill()
            proxy.process.wait()
    return proxy.process.returncode


def stop_checked(proxy: RunningProxy) -> None:
    """Stop the proxy; it must exit 0 and have handled every error a client caused (no stack trace)."""
    code = stop_proxy(proxy)
    assert code == 0, f"proxy exited with {code}:\n{proxy.log_text()[-5000:]}"
    assert "Traceback" not in proxy.log_text(), proxy.log_text()[-5000:]


@pytest.fixture(scope="session")
def proxy(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    running = start_proxy(kafka, tmp_path_factory.mktemp("proxy"))
    try:
        yield running
    finally:
        stop_checked(running)


TENANT_USERS = {  # user: (tenant, mechanism, password)
    "alice": ("acme", "SCRAM-SHA-512", "alice-secret"),
    "alicia": ("acme", "PLAIN", "alicia-secret"),
    "bob": ("globex", "SCRAM-SHA-256", "bob-secret"),
    "bea": ("globex", "PLAIN", "bea-secret"),
}


def write_tenants(path: Path) -> None:
    """A config file with two tenants, made with the operator CLI itself."""
    tenantry = [sys.executable, "-m", "tenantry.proxy.cli"]
    for tenant in ("acme", "globex"):
        subprocess.run([*tenantry, "tenant", "add", tenant, "--config", str(path)], check=True, capture_output=True)
    for user, (tenant, mechanism, password) in TENANT_USERS.items():
        subprocess.run([*tenantry, "user", "add", tenant, user, "--mechanism", mechanism, "--config", str(path)],
                       input=password + "\n", text=True, check=True, capture_output=True)


@pytest.fixture(scope="session")
def tenant_proxy(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    workdir = tmp_path_factory.mktemp("tenant-proxy")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    running = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                          "--auth-failure-delay-ms", "300")
    try:
        yield running
    finally:
        stop_checked(running)


def client_config(proxy: RunningProxy, user: str, password: str | None = None) -> dict[str, object]:
    """librdkafka settings for logging in to the proxy as one of TENANT_USERS."""
    _, mechanism, real_password = TENANT_USERS.get(user, ("", "SCRAM-SHA-512", ""))
    return {"bootstrap.servers": proxy.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism, "sasl.username": user,
            "sasl.password": real_password if password is None else password}


@pytest.fixture
def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
