"""kafka-python (pure-Python, blocking client) through the proxy."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from .conftest import unique

pytestmark = pytest.mark.integration


def test_produce_consume_commit_and_admin(proxy):
    topic = unique("kp")
    admin = KafkaAdminClient(bootstrap_servers=proxy.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 2, 1)])
        producer = KafkaProducer(bootstrap_servers=proxy.bootstrap, acks="all")
        for i in range(50):
            producer.send(topic, f"k{i}".encode())
        producer.flush(30)
        producer.close()

        group = unique("g")
        consumer = KafkaConsumer(topic, bootstrap_servers=proxy.bootstrap, group_id=group,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 consumer_timeout_ms=15_000)
        values = []
        for message in consumer:
            values.append(message.value)
            if len(values) == 50:
                break
        consumer.commit()
        committed = {p: consumer.committed(TopicPartition(topic, p)) for p in (0, 1)}
        consumer.close()
        assert sorted(values) == sorted(f"k{i}".encode() for i in range(50))
        assert sum(committed.values()) == 50

        listed = admin.list_groups()
        assert group in {g["group_id"] if isinstance(g, dict) else g[0] for g in listed}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        assert configs
        brokers = admin.describe_cluster()["brokers"]
        assert {(b["host"], b["port"]) for b in brokers} == {("127.0.0.1", proxy.broker_port_base + 1)}
        admin.delete_topics([topic])
    finally:
        admin.close()
