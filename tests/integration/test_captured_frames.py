"""Frames captured from the real broker and real clients decode and re-encode byte-identically."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tenantry.localkafka import KafkaBroker
from tenantry.localkafka.broker import free_port
from tenantry.protocol import decode, encode
from tenantry.protocol.headers import parse_request_header, response_body_offset, response_header_version
from tenantry.protocol.messages import REQUESTS, RESPONSES

from .conftest import KAFKA_VERSION, start_proxy, stop_checked, stop_proxy, unique
from .helpers import wait_for
from .relay import Captured, Relay
from .test_java_client import run_java

pytestmark = pytest.mark.integration

#: APIs every run must have captured, so the test cannot pass on an empty or trivial capture.
EXPECTED = {0, 1, 2, 3, 8, 9, 10, 11, 12, 14, 17, 18, 19, 22, 24, 26, 32, 36, 60}


def body_of(captured: Captured) -> memoryview:
    frame = memoryview(captured.frame)
    if captured.kind == "request":
        return frame[parse_request_header(frame).body_offset:]
    return frame[response_body_offset(frame, response_header_version(captured.api_key, captured.api_version)):]


def traffic(bootstrap: str) -> None:
    """Real clients doing real work: admin, plain and transactional produce, group consume, Java admin."""
    topic = unique("cap")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "compression.type": "lz4"})
    for i in range(50):
        producer.produce(topic, key=str(i).encode(), value=b"x" * i)
    producer.flush(30)
    txn = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique("cap-tx")})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(topic, value=b"in a transaction")
    txn.commit_transaction(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("cap-g"),
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[object] = []
    wait_for(lambda: ((m := consumer.poll(0.5)) is not None and not m.error() and got.append(m))
             or len(got) >= 51, 60, "the captured topic's messages")
    consumer.commit(asynchronous=False)
    consumer.close()
    run_java("admin", bootstrap, unique("cap-java"))
    subprocess.run(["kcat", "-b", bootstrap, "-L"], capture_output=True, timeout=60, check=True)


@pytest.fixture
def relayed_kafka(tmp_path):
    """A broker of its own whose SASL address, as it advertises it, is a capturing relay."""
    sasl_port = free_port()
    relay = Relay(sasl_port, capture=True)
    broker = KafkaBroker(tmp_path / "kafka", version=KAFKA_VERSION, sasl_port=sasl_port,
                         advertised_sasl_port=relay.port)
    broker.start()
    try:
        yield broker, relay
    finally:
        broker.stop()
        relay.close()


def test_captured_frames_round_trip_byte_identically(relayed_kafka, tmp_path):
    kafka, relay = relayed_kafka
    proxy = start_proxy(kafka, tmp_path, upstream=relay.address)
    try:
        traffic(proxy.bootstrap)
    finally:
        stop_proxy(proxy)
    seen = Counter((c.kind, c.api_key) for c in relay.frames)
    assert {key for kind, key in seen if kind == "request"} >= EXPECTED, seen
    assert {key for kind, key in seen if kind == "response"} >= EXPECTED, seen
    mismatches = []
    for captured in relay.frames:
        cls = (REQUESTS if captured.kind == "request" else RESPONSES)[captured.api_key]
        body = body_of(captured)
        if encode(decode(cls, body, captured.api_version), captured.api_version) != bytes(body):
            mismatches.append((captured.kind, cls.__name__, captured.api_version))
    assert mismatches == [], f"{len(mismatches)} of {len(relay.frames)} frames changed: {mismatches[:10]}"
    versions = {(c.api_key, c.api_version) for c in relay.frames}
    print(f"{len(relay.frames)} captured frames, {len(versions)} (API, version) pairs, all byte-identical")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_every_upstream_sasl_mechanism_logs_in(kafka, tmp_path, mechanism):
    proxy = start_proxy(kafka, tmp_path, mechanism=mechanism)
    try:
        metadata = AdminClient({"bootstrap.servers": proxy.bootstrap}).list_topics(timeout=10)
        assert metadata.brokers
    finally:
        stop_checked(proxy)
