"""A fleet of proxies holding one tenant-wide quota together (quota_coordination = kafka), on the real broker.

Three replicas (three proxy processes, each with its own ports, as three pods would be) and three workers
(one `--workers 3` process, sharing one port) report through a coordination topic of their own on the
test broker. Produce rates are measured at the broker's log end, fetch rates from the proxies' own
counters, connections from what each replica says it has open; every window is 10 s or more, after the
coordination has settled.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tenantry.localkafka.broker import free_port

from .conftest import client_config, start_proxy, stop_checked, stop_proxy, unique, write_tenants
from .helpers import wait_for
from .loadgen import VALUE
from .rawclient import plain_login
from .test_operations import scrape, value
from .test_quotas import EndOffsets, create, run_producer_process

pytestmark = pytest.mark.integration
MB = 1_000_000
QUOTA = 3 * MB
SETTLE, WINDOW = 6.0, 12.0  # seconds for the slices to move where the demand is, then the measured window


def tenantry(*args: str, config: Path) -> None:
    subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", *args, "--config", str(config)], check=True,
                   capture_output=True)


def start_fleet(kafka, workdir: Path, config: Path, replicas: int, *extra: str) -> list:
    topic = unique("fleet")  # each fleet its own coordination topic: the session's broker is shared
    fleet = []
    for _ in range(replicas):
        metrics = f"127.0.0.1:{free_port()}"
        proxy = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                            "--quota-coordination", "kafka", "--quota-coordination-topic", topic,
                            "--metrics-listen", metrics, "--quota-max-delay-ms", "5000", *extra)
        proxy.metrics = metrics
        fleet.append(proxy)
    wait_for(lambda: all(fleet_size(p.metrics) == replicas for p in fleet), 30, "every replica to see the whole fleet")
    return fleet


@pytest.fixture
def fleet_config(tmp_path):
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    return config


@pytest.fixture
def three_replicas(kafka, tmp_path, fleet_config):
    tenantry("quota", "set", "acme", "--produce-bytes-per-sec", str(QUOTA), "--fetch-bytes-per-sec", str(QUOTA),
             config=fleet_config)
    tenantry("quota", "set", "globex", "--max-connections", "6", config=fleet_config)
    fleet = start_fleet(kafka, tmp_path, fleet_config, 3)
    try:
        yield fleet
    finally:
        for proxy in fleet:
            if proxy.process.poll() is None:
                stop_checked(proxy)


def producers(fleet: list, topic: str, spread: tuple[int, ...], seconds: float) -> list[subprocess.Popen]:
    """Flat-out producers of alice, `spread[i]` of them through replica i, each in its own process."""
    return [run_producer_process(client_config(fleet[i], "alice"), topic, seconds, 0)
            for i, count in enumerate(spread) for _ in range(count)]


def finish(processes: list[subprocess.Popen]) -> list[dict[str, object]]:
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_producers_on_one_replica_and_one_on_another_are_held_to_the_tenant_quota(three_replicas):
    alice = client_config(three_replicas[0], "alice")
    topic = unique("fleet-produce")
    create(alice, topic)
    with EndOffsets(alice, topic) as broker:
        start = time.monotonic()
        results = finish(producers(three_replicas, topic, (2, 1, 0), SETTLE + WINDOW))
    measured = broker.rate(start + SETTLE, start + SETTLE + WINDOW)
    print(f"\n3 replicas, producers 2/1/0, quota {QUOTA / MB:.0f} MB/s: the broker received {measured / MB:.3f} MB/s "
          f"over {WINDOW:.0f} s")
    assert all(r["errors"] == [] and r["unsent"] == 0 for r in results)
    assert measured == pytest.approx(QUOTA, rel=0.10)


def test_the_replicas_left_take_over_the_share_of_one_killed_mid_run(three_replicas):
    alice = client_config(three_replicas[0], "alice")
    topic = unique("fleet-kill")
    create(alice, topic)
    running = producers(three_replicas, topic, (1, 2, 0), 2 * SETTLE + WINDOW)
    with EndOffsets(alice, topic) as broker:
        time.sleep(SETTLE)
        three_replicas[1].process.send_signal(signal.SIGKILL)  # two thirds of the traffic was there
        killed = time.monotonic()
        for process in running:
            process.wait(120)
    measured = broker.rate(killed + SETTLE, killed + SETTLE + WINDOW)
    print(f"\nreplica with 2 of 3 producers killed: the broker received {measured / MB:.3f} MB/s from the one left "
          f"on another replica, {SETTLE:.0f}-{SETTLE + WINDOW:.0f} s after")
    assert measured == pytest.approx(QUOTA, rel=0.10)
    survivors = [three_replicas[0], three_replicas[2]]
    assert all(fleet_size(p.metrics) == 2 for p in survivors)


@pytest.fixture
def fetch_fleet(kafka, tmp_path, fleet_config):
    tenantry("quota", "set", "acme", "--fetch-bytes-per-sec", str(QUOTA), config=fleet_config)  # produce: unlimited
    fleet = start_fleet(kafka, tmp_path, fleet_config, 3)
    try:
        yield fleet
    finally:
        for proxy in fleet:
            stop_checked(proxy)


def test_fetch_is_held_to_the_tenant_quota_across_replicas(fetch_fleet):
    tenantry_proxies = fetch_fleet
    alice = client_config(tenantry_proxies[0], "alice")
    topic = unique("fleet-fetch")
    create(alice, topic)
    filled = finish([run_producer_process(alice, topic, 6, 0)])[0]  # flat out: tens of MB
    assert filled["unsent"] == 0
    assert filled["acked"] * len(VALUE) > 2 * QUOTA * (SETTLE + WINDOW) / 3  # more than any consumer can read
    stop = threading.Event()
    consumed = [0] * 3

    def consume(slot: int, replica: int) -> None:
        consumer = Consumer({**client_config(tenantry_proxies[replica], "alice"), "group.id": unique("fleet-read"),
                             "fetch.max.bytes": 262144, "max.partition.fetch.bytes": 262144,
                             "message.max.bytes": 262144})
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])  # no group to join: reading starts at once
        try:
            while not stop.is_set():
                consumed[slot] += len(consumer.consume(500, 0.2))
        finally:
            consumer.close()

    threads = [threading.Thread(target=consume, args=(slot, replica)) for slot, replica in enumerate((0, 0, 1))]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(consumed), 60, "every consumer to read")  # then the slices follow where they read
        time.sleep(SETTLE)
        before = sum(value(scrape(f"http://{p.metrics}"), "tenantry_bytes_out_total", tenant="acme")
                     for p in tenantry_proxies)
        t0 = time.monotonic()
        time.sleep(WINDOW)
        after = sum(value(scrape(f"http://{p.metrics}"), "tenantry_bytes_out_total", tenant="acme")
                    for p in tenantry_proxies)
        t1 = time.monotonic()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    measured = (after - before) / (t1 - t0)
    print(f"\n3 replicas, consumers 2/1/0, fetch quota {QUOTA / MB:.0f} MB/s: the proxies sent "
          f"{measured / MB:.3f} MB/s of responses over {t1 - t0:.0f} s; consumers read {consumed} messages")
    assert all(n > 0 for n in consumed)
    assert all(n < filled["acked"] for n in consumed)  # all still reading: the quota was what held them
    assert measured == pytest.approx(QUOTA, rel=0.10)


def test_max_connections_holds_across_replicas(three_replicas):
    held: list = []
    deadline = time.monotonic() + 2 * SETTLE
    while time.monotonic() < deadline:  # clients keep trying on two replicas, as clients reconnect with backoff
        for proxy in three_replicas[:2]:
            for _ in range(4):
                sock = plain_login(proxy.bootstrap, "bea", "bea-secret", timeout=5)
                if sock is not None:
                    held.append(sock)
        time.sleep(1)
    try:
        time.sleep(3)  # the reports of what is held now reach every replica's settled view (two rounds behind)
        open_here = [value(scrape(f"http://{p.metrics}"), "tenantry_connections_active", tenant="globex")
                     for p in three_replicas]
        print(f"\nmax_connections 6 over 3 replicas, logins tried on two: {len(held)} logged in, open per replica "
              f"{open_here}")
        assert len(held) <= 6
        assert sum(open_here) <= 6
        assert len(held) >= 5  # the slices moved to where the logins are (the idle replica keeps at most one)
        assert open_here[2] == 0
        status = subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", "status", "--url",
                                 three_replicas[0].metrics], capture_output=True, text=True, check=True).stdout
        print(status)
        assert "fleet: 3 replicas, coordinated" in status
        row = next(line for line in status.splitlines() if line.startswith("globex") and " max_connections " in line)
        assert f"{len(held)} conns / 6 conns" in row and row.count(" (this) ") == 1
    finally:
        for sock in held:
            sock.close()


def test_three_workers_sharing_one_port_hold_the_tenant_quota(kafka, tmp_path, fleet_config):
    tenantry("quota", "set", "acme", "--produce-bytes-per-sec", str(QUOTA), config=fleet_config)
    (proxy,) = start_fleet_of_workers(kafka, tmp_path, fleet_config, 3)
    workers = children(proxy.process.pid)
    assert len(workers) == 3
    try:
        alice = client_config(proxy, "alice")
        topic = unique("fleet-workers")
        create(alice, topic)
        with EndOffsets(alice, topic) as broker:
            start = time.monotonic()
            results = finish([run_producer_process(alice, topic, SETTLE + WINDOW, 0) for _ in range(3)])
        measured = broker.rate(start + SETTLE, start + SETTLE + WINDOW)
        print(f"\n3 workers, 3 producers, quota {QUOTA / MB:.0f} MB/s: the broker received {measured / MB:.3f} MB/s")
        assert all(r["errors"] == [] and r["unsent"] == 0 for r in results)
        assert measured == pytest.approx(QUOTA, rel=0.10)
    finally:
        assert stop_proxy(proxy) == 0
        assert "Traceback" not in proxy.log_text()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "the parent left workers behind"


def start_fleet_of_workers(kafka, workdir: Path, config: Path, workers: int) -> list:
    metrics_port = free_port()
    proxy = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--quota-coordination", "kafka", "--quota-coordination-topic", unique("fleet"),
                        "--metrics-listen", f"127.0.0.1:{metrics_port}", "--quota-max-delay-ms", "5000",
                        "--workers", str(workers))
    ports = [metrics_port + i for i in range(workers)]
    wait_for(lambda: all(fleet_size(f"127.0.0.1:{port}") == workers for port in ports), 30,
             "every worker to see the others")
    proxy.ports_of_workers = ports
    return [proxy]


def test_a_dead_worker_is_started_again_and_sigterm_drains_them_all(kafka, tmp_path, fleet_config):
    (proxy,) = start_fleet_of_workers(kafka, tmp_path, fleet_config, 2)
    first = children(proxy.process.pid)
    try:
        assert len(first) == 2
        subprocess.run(["kill", "-9", str(first[0])], check=True)
        wait_for(lambda: len(set(children(proxy.process.pid)) - {first[0]}) == 2, 30, "the worker to be started again")
        wait_for(lambda: fleet_size(f"127.0.0.1:{proxy.ports_of_workers[0]}") == 2, 30,
                 "the new worker 0 to serve and join the fleet")
        assert "starting it again in 1 s" in proxy.log_text()
        sock = plain_login(proxy.bootstrap, "alicia", "alicia-secret")  # still served
        assert sock is not None
        sock.close()
        workers = children(proxy.process.pid)
    finally:
        assert stop_proxy(proxy) == 0
    assert "all workers stopped" in proxy.log_text()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def fleet_size(metrics: str) -> float:
    """The live replicas a proxy's admin port reports (-1 while it does not answer)."""
    try:
        return value(scrape(f"http://{metrics}"), "tenantry_fleet_replicas")
    except OSError:
        return -1


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (its workers)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
