"""Record encryption end to end: librdkafka, aiokafka and Kafka's Java client produce through the proxy to a
tenant's encrypted topics, in every codec, idempotent and transactional; what the broker stores (read
straight from it) holds no plaintext; what the tenant reads back through the proxy is byte-identical;
another tenant reads nothing; keys rotate mid-stream without a record lost; and records that cannot be
opened, or sealed, are errors, never plaintext.

Tenant acme encrypts topics ``sec-*`` (turned on with ``tenantry encryption enable``); ``plain-*`` topics
are the control: the same checks find their plaintext on the broker.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tenantry.localkafka import KafkaBroker
from tenantry.localkafka.broker import free_port
from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic

from .conftest import (
    GROUP_PROTOCOLS,
    TENANT_USERS,
    RunningProxy,
    client_config,
    start_proxy,
    stop_checked,
    unique,
    write_tenants,
)
from .rawclient import call
from .test_hostile_tenant import login
from .test_java_client import run_java

pytestmark = pytest.mark.integration
TENANTRY = [sys.executable, "-m", "tenantry.proxy.cli"]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


class Encrypting:
    def __init__(self, proxy: RunningProxy, config: Path, keys: Path, metrics: str) -> None:
        self.proxy, self.config, self.keys, self.metrics = proxy, config, keys, metrics


@pytest.fixture(scope="module")
def encrypting(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Encrypting]:
    workdir = tmp_path_factory.mktemp("record-encryption")
    config, keys = workdir / "tenantry.toml", workdir / "keys" / "tenant-keys.json"
    write_tenants(config)
    subprocess.run([*TENANTRY, "encryption", "enable", "acme", "--topics", "sec-*", "--key-store", str(keys),
                    "--config", str(config)], check=True, capture_output=True)
    metrics = f"127.0.0.1:{free_port()}"
    proxy = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--config-poll-seconds", "0.5", "--metrics-listen", metrics,
                        "--encryption-data-key-max-age-seconds", "2")
    try:
        yield Encrypting(proxy, config, keys, metrics)
    finally:
        stop_checked(proxy)


def messages(count: int, tag: str) -> list[Message]:
    return [(f"key-{tag}-{i}".encode() if i % 5 else None, f"SECRET-{tag}-{i}-".encode() * (1 + i % 7),
             [("h-secret", f"HDR-{tag}-{i}".encode())] if i % 3 else []) for i in range(count)]


def create(settings: dict[str, object], topic: str, partitions: int = 1) -> None:
    admin = AdminClient(settings)
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def produce(settings: dict[str, object], topic: str, batch: list[Message], **extra: object) -> None:
    errors: list[KafkaError] = []
    producer = Producer({**settings, "acks": "all", "linger.ms": 20, **extra})
    for key, value, headers in batch:
        producer.produce(topic, key=key, value=value, headers=headers,
                         on_delivery=lambda err, _: errors.append(err) if err else None)
    assert producer.flush(60) == 0 and not errors, errors


def consume(settings: dict[str, object], topic: str, count: int, **extra: object) -> list[Message]:
    consumer = Consumer({**settings, "group.id": unique("g"), "auto.offset.reset": "earliest",
                         "enable.partition.eof": False, **extra})
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + 60
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            out.append((msg.key(), msg.value(), [(k, v) for k, v in (msg.headers() or [])]))
    finally:
        consumer.close()
    return out


def on_broker(kafka: KafkaBroker, topic: str, count: int) -> list[Message]:
    """The records as the broker stores them, read straight from it (its PLAINTEXT listener, a super user)."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": unique("raw"),
                         "enable.auto.commit": False, "isolation.level": "read_uncommitted"})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    out: list[Message] = []
    deadline = time.monotonic() + 30
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append((msg.key(), msg.value(), [(k, v) for k, v in (msg.headers() or [])]))
    finally:
        consumer.close()
    return out


def holds_plaintext(stored: list[Message], needles: list[bytes]) -> bool:
    blob = b"\0".join(b"".join([k or b"", v or b"", *(n.encode() + (hv or b"") for n, hv in h)]) for k, v, h in stored)
    return any(needle in blob for needle in needles)


def needles(batch: list[Message]) -> list[bytes]:
    return [n for key, value, headers in batch for n in (key, value, *(v for _, v in headers)) if n]


def by_value(batch: list[Message]) -> list[Message]:
    return sorted(batch, key=lambda m: m[1] or b"")


@pytest.mark.parametrize("codec", CODECS)
def test_librdkafka_idempotent_in_every_codec_stores_no_plaintext_and_reads_back_identical(encrypting, kafka, codec):
    settings = client_config(encrypting.proxy, "alice")
    topic = unique("sec-rd")
    create(settings, topic, partitions=2)
    sent = messages(300, codec)
    produce(settings, topic, sent, **{"compression.type": codec, "enable.idempotence": True})
    assert by_value(consume(settings, topic, len(sent))) == by_value(sent)
    stored = on_broker(kafka, f"acme.{topic}", len(sent))
    assert len(stored) == len(sent)
    assert not holds_plaintext(stored, needles(sent))
    assert all(h == [("tenantry.encryption", b"v1")] and v is not None and v.startswith(b"TEV1") for _, v, h in stored)
    assert sum(k is None for k, _, _ in stored) == sum(k is None for k, _, _ in sent)  # null keys stay null


def test_the_control_an_unencrypted_topic_of_the_same_tenant_is_stored_as_sent(encrypting, kafka):
    """The checks above can fail: on a topic outside the globs they find the plaintext."""
    settings = client_config(encrypting.proxy, "alice")
    topic = unique("plain-rd")
    create(settings, topic)
    sent = messages(50, "plain")
    produce(settings, topic, sent, **{"compression.type": "zstd"})
    stored = on_broker(kafka, f"acme.{topic}", len(sent))
    assert holds_plaintext(stored, needles(sent)) and by_value(stored) == by_value(sent)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_aiokafka_in_every_codec_through_a_kip848_group(encrypting, kafka, codec):
    _, mechanism, password = TENANT_USERS["alice"]
    settings = {"bootstrap_servers": encrypting.proxy.bootstrap, "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": mechanism, "sasl_plain_username": "alice", "sasl_plain_password": password}
    topic = unique("sec-aio")
    create(client_config(encrypting.proxy, "alice"), topic)
    sent = messages(120, "aio" + codec)

    async def run() -> None:
        producer = AIOKafkaProducer(**settings, compression_type=codec, enable_idempotence=True, linger_ms=20)
        await producer.start()
        try:
            for key, value, headers in sent:
                await producer.send(topic, key=key, value=value, headers=headers)
            await producer.flush()
        finally:
            await producer.stop()
    asyncio.run(run())
    protocol = GROUP_PROTOCOLS[-1]  # KIP-848's consumer protocol where the broker has it
    got = consume(client_config(encrypting.proxy, "alice"), topic, len(sent), **{"group.protocol": protocol})
    assert by_value(got) == by_value(sent)
    assert not holds_plaintext(on_broker(kafka, f"acme.{topic}", len(sent)), needles(sent))


def test_java_idempotent_and_transactional_read_committed(encrypting, kafka):
    topic = unique("sec-java")
    out = run_java("produce-consume", encrypting.proxy.bootstrap, topic, login="alice")
    assert "OK consumed 500" in out and "OK committed 500" in out
    stored = on_broker(kafka, f"acme.{topic}", 500)
    assert len(stored) == 500 and all(v is not None and v.startswith(b"TEV1") for _, v, _ in stored)
    assert not {v for _, v, _ in stored} & {f"v{i}".encode() for i in range(500)}
    # An aborted and a committed transaction: a read_committed consumer sees only the committed record, so
    # the producer ids, the transactional bit and the markers crossed the proxy intact.
    tx_topic = unique("sec-tx")
    assert "OK transactions" in run_java("transactions", encrypting.proxy.bootstrap, tx_topic, login="alice")
    assert not holds_plaintext(on_broker(kafka, f"acme.{tx_topic}", 2), [b"committed", b"aborted"])


def test_another_tenant_reads_nothing_of_it(encrypting, kafka):
    alice, bob = client_config(encrypting.proxy, "alice"), client_config(encrypting.proxy, "bob")
    topic = unique("sec-iso")
    create(alice, topic)
    sent = messages(20, "iso")
    produce(alice, topic, sent)
    # bob's same name is his own topic (empty); acme's topic is not among his.
    create(bob, topic)
    bob_consumer = Consumer({**bob, "group.id": unique("bob"), "auto.offset.reset": "earliest"})
    try:
        bob_consumer.assign([TopicPartition(topic, 0, 0)])
        got = [m for m in (bob_consumer.poll(1.0) for _ in range(5)) if m is not None and not m.error()]
        assert got == []
        assert f"acme.{topic}" not in bob_consumer.list_topics(timeout=10).topics
    finally:
        bob_consumer.close()
    # Nor by the topic's id, read from the broker: UNKNOWN_TOPIC_ID and no records.
    broker = AdminClient({"bootstrap.servers": kafka.bootstrap})  # held until its futures resolve
    described = broker.describe_topics(TopicCollection([f"acme.{topic}"]))
    raw_id = next(iter(described.values())).result(30).topic_id
    topic_id = uuid.UUID(int=((raw_id.get_most_significant_bits() & (2**64 - 1)) << 64)
                         | (raw_id.get_least_significant_bits() & (2**64 - 1)))
    fetch = FetchRequest(max_wait_ms=100, min_bytes=1, max_bytes=1_000_000, topics=[FetchTopic(
        topic_id=topic_id, partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1_000_000)])])
    with login(encrypting.proxy, "bea") as sock:  # bea: globex, as bob, with PLAIN
        [answer] = call(sock, fetch, 13, corr=9).responses
    assert [p.error_code for p in answer.partitions] == [ErrorCode.UNKNOWN_TOPIC_ID]
    assert not answer.partitions[0].records
    # And the cluster's operators, reading the raw topic, get ciphertext.
    assert not holds_plaintext(on_broker(kafka, f"acme.{topic}", len(sent)), needles(sent))


def test_key_rotation_mid_stream_loses_nothing(encrypting, kafka):
    settings = client_config(encrypting.proxy, "alice")
    topic = unique("sec-rot")
    create(settings, topic)
    first, second = messages(100, "before"), messages(100, "after")
    produce(settings, topic, first)
    subprocess.run([*TENANTRY, "encryption", "rotate", "acme", "--config", str(encrypting.config)], check=True,
                   capture_output=True)
    time.sleep(2.5)  # the topic's data key expires (2 s here): the next one is wrapped with the new KEK
    produce(settings, topic, second)
    assert by_value(consume(settings, topic, 200)) == by_value(first + second)
    kek_ids = {v[6:6 + int.from_bytes(v[4:6], "big")] for _, v, _ in on_broker(kafka, f"acme.{topic}", 200) if v}
    assert len(kek_ids) == 2, kek_ids  # records under the old key and the new one, all read back


def test_a_record_that_cannot_be_opened_is_corrupt_message_never_its_bytes(encrypting, kafka):
    settings = client_config(encrypting.proxy, "alice")
    topic = unique("sec-bad")
    create(settings, topic)
    produce(settings, topic, [(b"k", b"good", [])])
    good = on_broker(kafka, f"acme.{topic}", 1)[0]
    # Someone with access to the broker writes a sealed-looking record with a damaged envelope.
    tampered = bytearray(good[1] or b"")
    tampered[-3] ^= 0xFF
    writer = Producer({"bootstrap.servers": kafka.bootstrap})
    writer.produce(f"acme.{topic}", key=good[0], value=bytes(tampered), headers=good[2])
    assert writer.flush(30) == 0
    consumer = Consumer({**settings, "group.id": unique("bad"), "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen: list[object] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and not any(isinstance(s, KafkaError) for s in seen):
            msg = consumer.poll(0.5)
            if msg is not None:
                seen.append(msg.error() or msg.value())
    finally:
        consumer.close()
    errors = [s for s in seen if isinstance(s, KafkaError)]
    assert errors and errors[0].code() == KafkaError.INVALID_MSG, errors  # CORRUPT_MESSAGE (2)
    assert all(value == b"good" for value in seen if not isinstance(value, KafkaError))  # never the damaged bytes
    metrics = urllib.request.urlopen(f"http://{encrypting.metrics}/metrics", timeout=10).read().decode()
    assert 'tenantry_encryption_failures_total{direction="open",tenant="acme"}' in metrics
    assert "cannot be opened, answered CORRUPT_MESSAGE" in encrypting.proxy.log_text()


def test_a_producer_whose_records_cannot_be_sealed_gets_an_error_and_nothing_is_written(encrypting, kafka):
    settings = client_config(encrypting.proxy, "alice")
    topic = unique("sec-nokey")
    create(settings, topic)
    saved = encrypting.keys.with_suffix(".saved")
    shutil.copy(encrypting.keys, saved)
    encrypting.keys.unlink()
    encrypting.keys.mkdir()  # the key store is now unreadable: a new topic's data key cannot be wrapped
    try:
        errors: list[KafkaError] = []
        producer = Producer({**settings, "acks": "all", "message.timeout.ms": 10000, "retries": 0})
        producer.produce(topic, value=b"must not be written in plaintext",
                         on_delivery=lambda err, _: errors.append(err) if err else None)
        producer.flush(30)
        assert errors, "the produce succeeded without a key"
    finally:
        encrypting.keys.rmdir()
        shutil.move(saved, encrypting.keys)
    assert on_broker(kafka, f"acme.{topic}", 1) == []
    assert "not sealed, Produce refused" in encrypting.proxy.log_text()


def test_the_proxy_refuses_to_start_with_encryption_and_no_key_store(kafka, tmp_path):
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    text = config.read_text() + '\n'
    config.write_text(text.replace('id = "acme"', 'id = "acme"\nencryption = { topics = ["sec-*"] }', 1))
    result = subprocess.run([*TENANTRY, "serve", "--config", str(config), "--upstream", kafka.bootstrap,
                             "--listener-security-protocol", "SASL_PLAINTEXT", "--sasl-salt-secret", "s"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "encryption_key_store: not set" in result.stderr


def test_metrics_count_sealed_and_opened_records(encrypting):
    text = urllib.request.urlopen(f"http://{encrypting.metrics}/metrics", timeout=10).read().decode()
    sealed = [line for line in text.splitlines()
              if line.startswith('tenantry_encrypted_records_total{direction="seal",tenant="acme"}')]
    assert sealed and float(sealed[0].split()[-1]) > 0, json.dumps(sealed)
