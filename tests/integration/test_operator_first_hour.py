"""An operator's first hour against a running proxy: what it logs at start, and a change applied on demand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tenantry.localkafka.broker import free_port
from tenantry.protocol.messages.describe_client_quotas_request import DescribeClientQuotasRequest

from .conftest import start_proxy, stop_checked, write_tenants
from .rawclient import call
from .test_hostile_tenant import login

TENANTRY = [sys.executable, "-m", "tenantry.proxy.cli"]


def tenantry(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TENANTRY, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def reloadable(kafka, tmp_path):
    """A tenant proxy whose file is re-read only on demand (a poll interval of an hour), and its metrics address."""
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    metrics = f"127.0.0.1:{free_port()}"
    proxy = start_proxy(kafka, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--metrics-listen", metrics, "--config-poll-seconds", "3600")
    try:
        yield proxy, config, metrics
    finally:
        stop_checked(proxy)


def test_a_quota_set_then_reloaded_holds_for_the_very_next_request(reloadable):
    proxy, config, metrics = reloadable
    assert tenantry("quota", "set", "acme", "--produce-bytes-per-sec", "100000", "--config",
                    str(config)).returncode == 0
    reloaded = tenantry("reload", "--url", metrics)
    assert reloaded.returncode == 0, reloaded.stderr
    with login(proxy, "alicia") as sock:
        entries = call(sock, DescribeClientQuotasRequest(components=[]), 1, corr=3).entries
    assert {(v.key, v.value) for e in entries for v in e.values} == {("producer_byte_rate", 100000.0)}
    log = proxy.log_text()
    assert "tenantry " in log and "effective configuration (secrets masked)" in log
    assert '"upstream_sasl_password": "***"' in log and '"sasl_salt_secret"' in log


def test_a_refused_reload_says_so(reloadable):
    proxy, config, metrics = reloadable
    config.write_text("max_frame_bytez = 5\n" + config.read_text())
    refused = tenantry("reload", "--url", metrics)
    assert refused.returncode == 1 and "refused" in refused.stderr
    assert "did you mean 'max_frame_bytes'" in proxy.log_text()
