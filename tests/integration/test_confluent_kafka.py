"""librdkafka (confluent-kafka) does everything through the proxy that it does against the broker."""

from __future__ import annotations

import os

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from .conftest import unique
from .helpers import assert_two_members_split_four_partitions, broker_clients, wait_for

pytestmark = pytest.mark.integration


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(30)


def consume(bootstrap: str, topic: str, count: int, **config: object) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("g"),
                         "auto.offset.reset": "earliest", **config})
    consumer.subscribe([topic])
    values: list[bytes] = []

    def poll() -> bool:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            values.append(message.value())
        return len(values) >= count
    try:
        wait_for(poll, 60, f"{count} messages from {topic}")
    finally:
        consumer.close()
    return values


def test_produce_and_consume(proxy, topic_name):
    create_topic(proxy.bootstrap, topic_name, partitions=3)
    producer = Producer({"bootstrap.servers": proxy.bootstrap, "acks": "all"})
    for i in range(300):
        producer.produce(topic_name, key=str(i).encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    assert sorted(consume(proxy.bootstrap, topic_name, 300)) == sorted(f"v{i}".encode() for i in range(300))


def test_metadata_names_only_proxy_addresses(proxy, kafka, topic_name):
    create_topic(proxy.bootstrap, topic_name)
    metadata = AdminClient({"bootstrap.servers": proxy.bootstrap}).list_topics(timeout=10)
    assert {(b.host, b.port) for b in metadata.brokers.values()} == {("127.0.0.1", proxy.broker_port_base + 1)}
    assert metadata.topics[topic_name].partitions[0].leader == 1


def test_no_client_connects_to_the_broker_itself(proxy, kafka, topic_name):
    create_topic(proxy.bootstrap, topic_name)
    consumer = Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": unique("g"),
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic_name])
    try:
        wait_for(lambda: consumer.poll(0.2) is None and consumer.assignment(), 30, "an assignment")
        broker_ports = {kafka.state.port, kafka.state.sasl_port}
        assert os.getpid() not in broker_clients(broker_ports)
        assert proxy.process.pid in broker_clients(broker_ports)
    finally:
        consumer.close()


def test_consumer_group_of_two_rebalances(proxy, topic_name):
    create_topic(proxy.bootstrap, topic_name, partitions=4)
    assert_two_members_split_four_partitions(
        {"bootstrap.servers": proxy.bootstrap, "group.id": unique("g"), "auto.offset.reset": "earliest"}, topic_name)


def test_committed_offsets_are_resumed(proxy, topic_name):
    create_topic(proxy.bootstrap, topic_name)
    producer = Producer({"bootstrap.servers": proxy.bootstrap})
    for i in range(10):
        producer.produce(topic_name, value=str(i).encode())
    producer.flush(30)
    group = unique("g")
    config = {"bootstrap.servers": proxy.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False}
    consumer = Consumer(config)
    consumer.subscribe([topic_name])
    seen: list[bytes] = []
    wait_for(lambda: ((m := consumer.poll(0.5)) is not None and not m.error() and seen.append(m.value()))
             or len(seen) >= 4, 30, "four messages")
    consumer.commit(offsets=[TopicPartition(topic_name, 0, 4)], asynchronous=False)
    consumer.close()
    again = Consumer(config)
    try:
        committed = again.committed([TopicPartition(topic_name, 0)], timeout=10)
        assert committed[0].offset == 4
        again.subscribe([topic_name])
        message = wait_for(lambda: (m := again.poll(0.5)) is not None and not m.error() and m, 30, "a message")
        assert message.value() == b"4"
    finally:
        again.close()


def test_idempotent_producer(proxy, topic_name):
    create_topic(proxy.bootstrap, topic_name)
    producer = Producer({"bootstrap.servers": proxy.bootstrap, "enable.idempotence": True})
    errors = []
    for i in range(200):
        producer.produce(topic_name, value=str(i).encode(), on_delivery=lambda e, m: e and errors.append(e))
    assert producer.flush(30) == 0
    assert errors == []
    assert len(consume(proxy.bootstrap, topic_name, 200)) == 200


def test_transactions_commit_and_abort_with_read_committed(proxy, topic_name):
    create_topic(proxy.bootstrap, topic_name)
    producer = Producer({"bootstrap.servers": proxy.bootstrap, "transactional.id": unique("tx")})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic_name, value=b"aborted")
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic_name, value=b"committed")
    producer.commit_transaction(30)
    values = consume(proxy.bootstrap, topic_name, 1, **{"isolation.level": "read_committed"})
    assert values == [b"committed"]


def test_admin_create_describe_list_delete(proxy):
    admin = AdminClient({"bootstrap.servers": proxy.bootstrap})
    name = unique("admin")
    for future in admin.create_topics([NewTopic(name, 2, 1, config={"retention.ms": "3600000"})]).values():
        future.result(30)
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)

    def described() -> dict | None:
        try:
            return admin.describe_configs([resource])[resource].result(30)
        except KafkaException as exc:  # under KRaft the broker learns of a new topic just after CreateTopics
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # answers; a fast client can ask first
                raise
            return None
    configs = wait_for(described, what=f"the configs of {name}")
    assert configs["retention.ms"].value == "3600000"
    group = unique("listed")
    consume_config = {"bootstrap.servers": proxy.bootstrap, "group.id": group}
    consumer = Consumer(consume_config)
    consumer.subscribe([name])
    wait_for(lambda: consumer.poll(0.2) is None and consumer.assignment(), 30, "a group member")
    listed = admin.list_consumer_groups().result(30)
    assert group in {g.group_id for g in listed.valid}
    consumer.close()
    for future in admin.delete_topics([name]).values():
        future.result(30)
    wait_for(lambda: name not in admin.list_topics(timeout=10).topics, 30, "the topic to go")



def test_acks_zero_produce_gets_no_response_and_does_not_stall_the_connection(proxy, topic_name):
    create_topic(proxy.bootstrap, topic_name)
    producer = Producer({"bootstrap.servers": proxy.bootstrap, "acks": 0})
    for i in range(100):
        producer.produce(topic_name, value=str(i).encode())
    assert producer.flush(30) == 0
    # Metadata requests share the connection with the acks=0 produces; a proxy that waited for a
    # produce response that never comes would stall them, and the admin call below would time out.
    assert topic_name in AdminClient({"bootstrap.servers": proxy.bootstrap}).list_topics(timeout=10).topics
    assert len(consume(proxy.bootstrap, topic_name, 100)) == 100
