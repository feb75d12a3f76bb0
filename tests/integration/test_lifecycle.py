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
from .helpers import readiness
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


def test_with_the_cluster_down_at_start_the_proxy_waits_not_ready_then_serves_when_it_appears(tmp_path):
    from tenantry.localkafka import KafkaBroker

    from .helpers import wait_for

    upstream, listen, metrics = free_port(), free_port(), f"127.0.0.1:{free_port()}"
    log = tmp_path / "proxy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*TENANTRY, "serve", "--upstream", f"127.0.0.1:{upstream}", "--listen",
                                    f"127.0.0.1:{listen}", "--metrics-listen", metrics,
                                    "--upstream-connect-timeout-seconds", "2", "--listener-security-protocol",
                                    "PLAINTEXT"], stdout=out, stderr=subprocess.STDOUT)
    broker = KafkaBroker(tmp_path / "late-kafka", version=KAFKA_VERSION, port=upstream)
    try:
        wait_for(lambda: "retrying" in log.read_text(), 30, "a failed first attempt")
        status, why = readiness(metrics)
        assert status == 503 and why["started"] is False and f"127.0.0.1:{upstream}" in str(why["upstream_errors"])
        assert process.poll() is None and not api_versions_answers("127.0.0.1", listen)
        broker.start()
        wait_for(lambda: readiness(metrics)[0] == 200, 90, "the proxy to become ready")
        assert api_versions_answers("127.0.0.1", listen)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        broker.stop()
    assert code == 0, log.read_text()


def test_a_signal_while_waiting_for_the_cluster_stops_the_proxy_cleanly(tmp_path):
    from .helpers import wait_for

    log = tmp_path / "proxy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*TENANTRY, "serve", "--upstream", f"127.0.0.1:{free_port()}", "--listen",
                                    f"127.0.0.1:{free_port()}", "--listener-security-protocol", "PLAINTEXT"],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "retrying" in log.read_text(), 30, "a failed first attempt")
    finally:
        process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert "cannot be reached" in log.read_text()


def test_readyz_is_503_while_a_brokers_listener_cannot_open_and_recovers_when_it_can(kafka, tmp_path):
    import socket

    from .helpers import wait_for

    base, metrics = free_port() - 1, f"127.0.0.1:{free_port()}"
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", base + 1))
    squatter.listen()
    log = tmp_path / "proxy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*TENANTRY, "serve", "--upstream", kafka.bootstrap, "--listen",
                                    f"127.0.0.1:{free_port()}", "--broker-port-base", str(base), "--metrics-listen",
                                    metrics, "--health-check-interval-seconds", "1",
                                    "--listener-security-protocol", "PLAINTEXT"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "cannot listen for broker 1" in log.read_text(), 30, "the listener to fail")
        status, why = readiness(metrics)
        assert status == 503 and "1" in why["broker_listeners_failed"]
        squatter.close()
        wait_for(lambda: readiness(metrics)[0] == 200, 30, "the listener to open at a later health check")
        assert api_versions_answers("127.0.0.1", base + 1)
    finally:
        squatter.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


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
