"""Changing the tenants of a running proxy: removed users lose their connections, others keep theirs."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tenantry.protocol.messages.metadata_request import MetadataRequest

from .conftest import start_proxy, stop_checked, write_tenants
from .helpers import wait_for
from .rawclient import call, closed_by_peer
from .test_hostile_tenant import login

pytestmark = pytest.mark.integration
TENANTRY = [sys.executable, "-m", "tenantry.proxy.cli"]


@pytest.fixture
def reloading_proxy(kafka, tmp_path):
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(kafka, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--config-poll-seconds", "0")  # reload only on SIGHUP, so the test controls when
    yield proxy, config
    stop_checked(proxy)


def still_served(sock) -> bool:
    return call(sock, MetadataRequest(topics=[]), 12, corr=7).throttle_time_ms >= 0


def test_removing_a_user_closes_only_its_connections(reloading_proxy):
    proxy, config = reloading_proxy
    with login(proxy, "alicia") as removed, login(proxy, "bea") as unaffected:
        subprocess.run([*TENANTRY, "user", "remove", "acme", "alicia", "--config", str(config)], check=True,
                       capture_output=True)
        proxy.process.send_signal(signal.SIGHUP)
        assert closed_by_peer(removed)
        assert still_served(unaffected)
    with pytest.raises(AssertionError):
        login(proxy, "alicia")  # and it can no longer log in


def test_removing_a_tenant_closes_its_users_connections(reloading_proxy):
    proxy, config = reloading_proxy
    with login(proxy, "bea") as globex_user, login(proxy, "alicia") as acme_user:
        subprocess.run([*TENANTRY, "tenant", "remove", "globex", "--config", str(config)], check=True,
                       capture_output=True)
        proxy.process.send_signal(signal.SIGHUP)
        assert closed_by_peer(globex_user)
        assert still_served(acme_user)


def test_a_broken_file_is_refused_and_the_last_good_tenants_stay(reloading_proxy):
    proxy, config = reloading_proxy
    good = config.read_text()
    config.write_text(good + "\n[[tenants]]\nid = 'BAD ID'\n")
    with login(proxy, "alicia") as sock:
        proxy.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reload refused" in proxy.log_text(), 10, "the refusal in the log")
        assert still_served(sock)
    login(proxy, "bea").close()  # logins still work with the last good tenants


def test_file_changes_are_picked_up_without_a_signal(kafka, tmp_path):
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(kafka, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--config-poll-seconds", "0.2")
    try:
        with login(proxy, "alicia") as sock:
            subprocess.run([*TENANTRY, "user", "remove", "acme", "alicia", "--config", str(config)], check=True,
                           capture_output=True)
            assert closed_by_peer(sock)
    finally:
        stop_checked(proxy)
