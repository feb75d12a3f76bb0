"""Tenants stored in Kafka (tenant_store = kafka), on the real broker: three replicas follow the store, the CLI
changes it, every replica applies a change within seconds, and tenants move between a file and the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tenantry.localkafka.broker import SERVICE_PASSWORD, SERVICE_USER, free_port
from tenantry.tenants.store import load_registry

from .conftest import TENANT_USERS, start_proxy, stop_checked, unique, write_tenants
from .helpers import wait_for
from .rawclient import plain_login
from .test_fleet import fleet_size
from .test_operations import scrape, value

pytestmark = pytest.mark.integration


def cli(kafka, topic: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`tenantry ...` against the Kafka store, logging in as the service user the proxies use."""
    env = dict(os.environ, TENANTRY_UPSTREAM_SECURITY_PROTOCOL="SASL_PLAINTEXT",
               TENANTRY_UPSTREAM_SASL_MECHANISM="SCRAM-SHA-512", TENANTRY_UPSTREAM_SASL_USERNAME=SERVICE_USER,
               TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD, TENANTRY_TENANT_STORE_TOPIC=topic)
    return subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", *args, "--store", "kafka", "--bootstrap",
                           kafka.sasl_bootstrap], env=env, input=stdin, capture_output=True, text=True, timeout=120)


@pytest.fixture
def store(kafka, tmp_path):
    """A fresh store topic holding the usual two tenants, imported from a file made with the CLI."""
    topic = unique("tenants")
    source = tmp_path / "tenants.toml"
    write_tenants(source)
    done = cli(kafka, topic, "tenant", "import", "--from", str(source))
    assert done.returncode == 0, done.stderr
    return topic, source


@pytest.fixture
def replicas(kafka, tmp_path, store):
    topic, _ = store
    fleet, coordination = [], unique("fleet")
    try:
        for _ in range(3):
            metrics = f"127.0.0.1:{free_port()}"
            proxy = start_proxy(kafka, tmp_path, "--listener-security-protocol", "SASL_PLAINTEXT",
                                "--tenant-store", "kafka", "--tenant-store-topic", topic, "--metrics-listen", metrics,
                                "--quota-coordination", "kafka", "--quota-coordination-topic", coordination)
            proxy.metrics = metrics
            fleet.append(proxy)
        wait_for(lambda: all(fleet_size(p.metrics) == 3 for p in fleet), 30, "the three replicas to see each other")
        time.sleep(3)  # and to be in one another's settled rounds (two intervals behind)
        yield fleet
    finally:
        for proxy in fleet:
            stop_checked(proxy)


def test_every_replica_serves_the_stored_tenants(replicas):
    for proxy in replicas:
        for user, (_, mechanism, password) in TENANT_USERS.items():
            if mechanism == "PLAIN":
                sock = plain_login(proxy.bootstrap, user, password)
                assert sock is not None, f"{user} on {proxy.bootstrap}"
                sock.close()
        assert not _logs_in(proxy, "alicia", "wrong-password")


def test_a_quota_set_with_the_cli_is_enforced_by_every_replica_within_5_s(kafka, store, replicas):
    topic, _ = store
    held = [plain_login(p.bootstrap, "alicia", "alicia-secret") for p in replicas]  # acme is live on each
    try:
        done = cli(kafka, topic, "quota", "set", "acme", "--produce-bytes-per-sec", "3000000")
        assert done.returncode == 0, done.stderr
        written = time.monotonic()

        def everywhere() -> bool:
            return all(value(scrape(f"http://{p.metrics}"), "tenantry_fleet_limit", tenant="acme", limit="produce")
                       == 3_000_000 for p in replicas)
        wait_for(everywhere, 5, "every replica to enforce the new quota")
        print(f"\nquota set with the CLI: in force on all 3 replicas {time.monotonic() - written:.2f} s after it "
              "was written")

        def sliced() -> float:
            return sum(value(scrape(f"http://{p.metrics}"), "tenantry_quota_limit", tenant="acme", quota="produce")
                       for p in replicas)
        wait_for(lambda: sliced() == pytest.approx(3_000_000), 5, "the slices to add up to the quota")
        print(f"each replica enforcing its slice, together the quota: {time.monotonic() - written:.2f} s")
        for proxy in replicas:  # the change log: who, when, what
            wait_for(lambda p=proxy: "tenant store: applying tenant acme by " in p.log_text(), 10, "the change log")
            assert "tenantry quota set acme --produce-bytes-per-sec 3000000" in proxy.log_text()
    finally:
        for sock in held:
            if sock is not None:
                sock.close()


def test_a_user_added_to_the_store_logs_in_on_every_replica_and_a_removed_one_is_cut_off(kafka, store, replicas):
    topic, _ = store
    done = cli(kafka, topic, "user", "add", "acme", "carol", "--mechanism", "PLAIN", stdin="carol-secret-1\n")
    assert done.returncode == 0, done.stderr
    for proxy in replicas:
        wait_for(lambda p=proxy: _logs_in(p, "carol", "carol-secret-1"), 10, "carol's login")
    held = plain_login(replicas[0].bootstrap, "carol", "carol-secret-1")
    assert held is not None
    done = cli(kafka, topic, "user", "remove", "acme", "carol")
    assert done.returncode == 0, done.stderr
    for proxy in replicas:
        wait_for(lambda p=proxy: not _logs_in(p, "carol", "carol-secret-1"), 10, "carol to be refused")
    held.settimeout(10)
    assert held.recv(1) == b""  # her open connection was closed, as a reload of the file would
    held.close()


def _logs_in(proxy, user: str, password: str) -> bool:
    try:
        sock = plain_login(proxy.bootstrap, user, password, timeout=5)
    except AssertionError:  # the proxy answered the login with an error
        return False
    if sock is not None:
        sock.close()
    return sock is not None


def test_a_change_the_tenants_would_not_validate_under_is_refused_by_the_cli(kafka, store):
    topic, _ = store
    done = cli(kafka, topic, "user", "add", "globex", "alicia", "--mechanism", "PLAIN", stdin="another-secret\n")
    assert done.returncode == 1 and "not saved" in done.stderr  # alicia is acme's
    listed = cli(kafka, topic, "tenant", "list")
    assert "globex" in listed.stdout and listed.stdout.count("alicia") == 1


def test_export_writes_the_stored_tenants_into_a_file_that_import_reads_back(kafka, store, tmp_path):
    topic, source = store
    exported = tmp_path / "exported.toml"
    done = cli(kafka, topic, "tenant", "export", "--to", str(exported))
    assert done.returncode == 0, done.stderr
    original, copied = load_registry(source), load_registry(exported)
    assert set(copied.tenants) == set(original.tenants) == {"acme", "globex"}
    for tenant_id, tenant in original.tenants.items():
        assert copied.tenants[tenant_id].prefix == tenant.prefix
        assert {u: repr(c.credentials) for u, c in copied.tenants[tenant_id].users.items()} == \
            {u: repr(c.credentials) for u, c in tenant.users.items()}
    other = unique("tenants")
    assert cli(kafka, other, "tenant", "import", "--from", str(exported)).returncode == 0
    assert "acme" in cli(kafka, other, "tenant", "list").stdout


def test_a_proxy_whose_store_does_not_validate_refuses_to_start(kafka, tmp_path):
    topic = unique("tenants")
    config = tmp_path / "both.toml"
    write_tenants(config)
    # Tenants in the file and a Kafka store: which would be in force is unclear, so the proxy does not start.
    result = subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", "serve", "--config", str(config),
                             "--upstream", kafka.sasl_bootstrap, "--listener-security-protocol", "SASL_PLAINTEXT",
                             "--tenant-store", "kafka", "--tenant-store-topic", topic],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD))
    assert result.returncode == 2 and "tenant_store: kafka, but" in result.stderr
    assert Path(config).exists()
