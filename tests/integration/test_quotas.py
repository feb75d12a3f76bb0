"""Quotas held with real clients against the real broker: the client backs off, nothing is lost.

Each quota is set with `tenantry quota set` on the running proxy's config file and applied live.
Rates are measured by the clients over at least 10 s after the first 2 s (the bucket's burst).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import client_config, start_proxy, stop_checked, unique, write_tenants
from .helpers import wait_for

pytestmark = pytest.mark.integration
MB = 1_000_000
RUN, SKIP = 12.0, 2.0  # seconds of traffic, and of it the burst left out of the measurement
VALUE = b"v" * 1000


@pytest.fixture(scope="module")
def quota_proxy(kafka, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quota-proxy")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    running = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                          "--config-poll-seconds", "0.2", "--quota-max-delay-ms", "5000")
    running.config = config
    try:
        yield running
    finally:
        stop_checked(running)


def set_quota(proxy, tenant: str, *flags: str) -> None:
    """`tenantry quota set`, then wait until the running proxy has reloaded it."""
    before = proxy.log_text().count("reloaded")
    subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", "quota", "set", tenant, *flags,
                    "--config", str(proxy.config)], check=True, capture_output=True)
    wait_for(lambda: proxy.log_text().count("reloaded") > before, 10, "the proxy to reload its config")


def create(config: dict[str, object], topic: str, partitions: int = 1) -> None:
    admin = AdminClient(config)
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def flood(config: dict[str, object], topic: str, seconds: float, rate: float | None = None) -> dict[str, object]:
    """Produce 1 kB values flat out (or at `rate` values/s) for `seconds`; what the client saw."""
    # A bounded queue: flat out means as fast as acks come back, not 1 GB buffered in the client.
    producer = Producer({**config, "linger.ms": 5, "batch.size": 65536, "acks": "all",
                         "queue.buffering.max.messages": 2000})
    acked: list[tuple[float, float]] = []  # (acked at, latency)
    errors: list[str] = []

    def delivered(err, msg, sent=None):
        if err is not None:
            errors.append(str(err))
        else:
            now = time.monotonic()
            acked.append((now, now - sent))
    start = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - start < seconds:
        if rate is not None and sent >= (now - start) * rate:
            producer.poll(0.0005)
            continue
        try:
            producer.produce(topic, VALUE, on_delivery=lambda e, m, t=now: delivered(e, m, t))
            sent += 1
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(60) == 0
    return {"start": start, "acked": acked, "errors": errors, "sent": sent}


def rate_between(times: list[float], start: float, end: float, size: int = len(VALUE)) -> float:
    return sum(1 for t in times if start <= t < end) * size / (end - start)


def test_produce_is_held_to_its_quota_without_errors_or_loss(quota_proxy):
    alice = client_config(quota_proxy, "alice")
    topic = unique("quota-produce")
    create(alice, topic)
    set_quota(quota_proxy, "acme", "--produce-bytes-per-sec", str(MB))
    try:
        run = flood(alice, topic, RUN)
    finally:
        set_quota(quota_proxy, "acme", "--produce-bytes-per-sec", "0")
    times = [t for t, _ in run["acked"]]
    measured = rate_between(times, run["start"] + SKIP, run["start"] + RUN)
    print(f"\nproduce quota 1.00 MB/s: measured {measured / MB:.3f} MB/s over {RUN - SKIP:.0f} s")
    assert run["errors"] == []
    assert measured == pytest.approx(MB, rel=0.10)
    assert count_messages(alice, topic) == len(run["acked"])  # every acknowledged message is there


def count_messages(config: dict[str, object], topic: str) -> int:
    consumer = Consumer({**config, "group.id": unique("count"), "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen = 0
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 5:
            batch = consumer.consume(1000, 0.5)
            if batch:
                seen += sum(1 for m in batch if not m.error())
                idle_since = time.monotonic()
    finally:
        consumer.close()
    return seen


def test_fetch_is_held_to_its_quota(quota_proxy):
    alice = client_config(quota_proxy, "alice")
    topic = unique("quota-fetch")
    create(alice, topic)
    run = flood(alice, topic, 4)  # about 20 MB to read, unthrottled
    total = len(run["acked"])
    assert total * len(VALUE) > 1.5 * RUN * MB
    set_quota(quota_proxy, "acme", "--fetch-bytes-per-sec", str(MB))
    consumer = Consumer({**alice, "group.id": unique("quota-fetch"), "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received: list[float] = []
    errors = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < RUN:
            for message in consumer.consume(500, 0.2):
                if message.error():
                    errors.append(str(message.error()))
                else:
                    received.append(time.monotonic())
    finally:
        consumer.close()
        set_quota(quota_proxy, "acme", "--fetch-bytes-per-sec", "0")
    measured = rate_between(received, start + SKIP, start + RUN)
    print(f"\nfetch quota 1.00 MB/s: measured {measured / MB:.3f} MB/s of values over {RUN - SKIP:.0f} s")
    assert errors == []
    assert measured == pytest.approx(MB, rel=0.10)


def test_request_rate_is_held_to_its_quota(quota_proxy):
    bob = client_config(quota_proxy, "bob")
    topic = unique("quota-requests")
    create(bob, topic)
    set_quota(quota_proxy, "globex", "--requests-per-sec", "20")
    producer = Producer({**bob, "linger.ms": 0, "acks": "all"})
    acked: list[float] = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < RUN:  # one message per Produce request
            producer.produce(topic, b"x", on_delivery=lambda e, m: e is None and acked.append(time.monotonic()))
            producer.flush(30)
    finally:
        set_quota(quota_proxy, "globex", "--requests-per-sec", "0")
    measured = rate_between(acked, start + SKIP, start + RUN, size=1)
    print(f"\nrequest quota 20/s: measured {measured:.1f} produce requests/s over {RUN - SKIP:.0f} s")
    assert measured == pytest.approx(20, rel=0.10)  # other requests (metadata) are a few in 10 s
