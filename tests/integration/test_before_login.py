"""Connections that have not logged in cost little and never make a logged-in tenant wait (real broker)."""

from __future__ import annotations

import socket
import statistics
import time

import psutil
import pytest
from confluent_kafka import Consumer, Producer

from .conftest import client_config, unique
from .rawclient import closed_by_peer, connect
from .test_tenant_isolation import create

pytestmark = pytest.mark.integration
RECORD = 300 * 1024


def produce_and_fetch(config: dict[str, object], topic: str, rounds: int = 8) -> float:
    """The median time of producing one 300 KB record (acks=all) and fetching it back, in seconds."""
    import os

    producer = Producer({**config, "acks": "all", "linger.ms": 0})
    consumer = Consumer({**config, "group.id": unique("g"), "auto.offset.reset": "earliest",
                         "fetch.max.bytes": 4 * RECORD, "max.partition.fetch.bytes": 4 * RECORD})
    consumer.subscribe([topic])
    times = []
    try:
        for _ in range(rounds):
            token = os.urandom(16)
            started = time.monotonic()
            producer.produce(topic, value=token + bytes(RECORD - 16))
            assert producer.flush(30) == 0, "a record was not acknowledged"
            while True:  # earlier records come first: read up to this one
                message = consumer.poll(1)
                if message is not None and not message.error() and message.value()[:16] == token:
                    break
                assert time.monotonic() - started < 60, "a record was not fetched"
            times.append(time.monotonic() - started)
    finally:
        consumer.close()
    return statistics.median(times)


def test_unauthenticated_peers_announcing_big_frames_do_not_slow_a_tenant(tenant_proxy):
    config = client_config(tenant_proxy, "alice")
    topic = unique("big")
    create(config, topic)
    produce_and_fetch(config, topic, rounds=2)  # warm up: metadata, group, connections
    baseline = produce_and_fetch(config, topic)
    attackers: list[socket.socket] = []
    try:
        for size in [100 << 20, 100 << 20, 56 << 20] + [500 * 1024] * 60:  # the finding's three, and many more
            sock = connect(tenant_proxy.bootstrap)
            sock.sendall(size.to_bytes(4, "big") + b"\x00\x11\x00")  # a frame that will never be finished
            attackers.append(sock)
        attacked = produce_and_fetch(config, topic)
        huge_closed = [closed_by_peer(s, timeout=5) for s in attackers[:3]]
    finally:
        for sock in attackers:
            sock.close()
    assert huge_closed == [True, True, True]  # over sasl_max_receive_bytes: closed before anything is read
    # Before the pre-login budget, these stalled for as long as the sockets stayed open (over 30 s).
    assert attacked <= 2 * baseline + 0.1, f"median {attacked * 1000:.0f} ms under attack, {baseline * 1000:.0f} alone"


def test_slow_unauthenticated_connections_hold_little_memory_and_time_out(tenant_proxy):
    process = psutil.Process(tenant_proxy.process.pid)
    before = process.memory_info().rss
    sockets = []
    try:
        for _ in range(400):
            sock = connect(tenant_proxy.bootstrap)
            sock.sendall(b"\x00\x00")  # half a size prefix, then nothing
            sockets.append(sock)
        time.sleep(1)
        per_connection = (process.memory_info().rss - before) / len(sockets)
        assert per_connection < 60 * 1024, f"{per_connection / 1024:.0f} kB per unauthenticated connection"
        # login_timeout_ms (10 s by default) closes every one of them
        assert all(closed_by_peer(s, timeout=30) for s in sockets)
    finally:
        for sock in sockets:
            sock.close()
