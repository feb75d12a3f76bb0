"""Starting and stopping: the CLI, bad configuration, and draining in-flight requests on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tenantry.localkafka.broker import api_versions_answers, free_port, load_running
from tenantry.protocol.envelope import request_frame
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic

from .conftest import KAFKA_VERSION, start_proxy, unique
from .rawclient import closed_by_peer, connect, recv_frame

pytestmark = pytest.mark.integration
TENANTRY = [sys.executable, "-m", "tenantry.proxy.cli"]


def test_sigterm_lets_an_in_flight_request_finish_then_exits(kafka, proxy, tmp_path):
    topic = unique("drain")
    admin = AdminClient({"bootstrap.servers": proxy.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)
    draining = start_proxy(kafka, tmp_path)
    # A long poll: the broker holds it for max_wait_ms because min_bytes cannot be met.
    fetch = FetchRequest(max_wait_ms=3000, min_bytes=10_000_000, topics=[
        FetchTopic(topic=topic, partitions=[FetchPartition(partition=0, fetch_offset=0)])])
    with connect(draining.bootstrap) as sock:
        sock.sendall(request_frame(fetch, 12, 77, "drainer"))
        time.sleep(0.5)
        draining.process.send_signal(signal.SIGTERM)
        response = recv_frame(sock)  # still answered, after the broker's wait
        assert int.from_bytes(response[:4], "big") == 77
        assert closed_by_peer(sock)
    assert draining.process.wait(30) == 0
    assert not api_versions_answers("127.0.0.1", draining.port)


def test_bad_configuration_fails_fast_naming_the_field():
    result = subprocess.run([*TENANTRY, "serve", "--upstream", "127.0.0.1:9092", "--listen", "nonsense"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "listen: 'nonsense' is not host:port" in result.stderr


def test_unreachable_upstream_fails_start_with_a_clear_message():
    dead = free_port()
    result = subprocess.run([*TENANTRY, "serve", "--upstream", f"127.0.0.1:{dead}", "--listen",
                             f"127.0.0.1:{free_port()}", "--upstream-connect-timeout-seconds", "2",
                             "--listener-security-protocol", "PLAINTEXT"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"127.0.0.1:{dead}" in result.stderr and "cannot start" in result.stderr


def test_kafka_start_and_stop_from_the_cli(tmp_path):
    port = free_port()
    start = subprocess.run([*TENANTRY, "kafka", "start", "--dir", str(tmp_path), "--port", str(port),
                            "--version", KAFKA_VERSION], capture_output=True, text=True, timeout=180, check=False)
    try:
        assert start.returncode == 0, start.stderr
        assert start.stdout.strip() == f"127.0.0.1:{port}"
        assert api_versions_answers("127.0.0.1", port)
        pid = load_running(tmp_path).pid
    finally:
        stop = subprocess.run([*TENANTRY, "kafka", "stop", "--dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert stop.returncode == 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    again = subprocess.run([*TENANTRY, "kafka", "stop", "--dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1 and "no broker is running" in again.stderr
    assert all(p.is_relative_to(tmp_path) for p in tmp_path.rglob("*"))
