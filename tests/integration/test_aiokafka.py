"""aiokafka (pure-Python asyncio client) through the proxy."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from .conftest import unique

pytestmark = pytest.mark.integration


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def read(bootstrap: str, topic: str, count: int, **config: object) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=unique("g"),
                                auto_offset_reset="earliest", **config)
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            async for message in consumer:
                values.append(message.value)
                if len(values) >= count:
                    break
    finally:
        await consumer.stop()
    return values


async def test_produce_consume_and_idempotence(proxy, topic_name):
    await create_topic(proxy.bootstrap, topic_name, 2)
    producer = AIOKafkaProducer(bootstrap_servers=proxy.bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for i in range(100):
            await producer.send(topic_name, f"a{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    assert sorted(await read(proxy.bootstrap, topic_name, 100)) == sorted(f"a{i}".encode() for i in range(100))


async def test_group_commit_and_resume(proxy, topic_name):
    await create_topic(proxy.bootstrap, topic_name)
    producer = AIOKafkaProducer(bootstrap_servers=proxy.bootstrap)
    await producer.start()
    for i in range(6):
        await producer.send_and_wait(topic_name, str(i).encode())
    await producer.stop()
    group = unique("g")
    consumer = AIOKafkaConsumer(topic_name, bootstrap_servers=proxy.bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000, max_records=3)
        assert sum(len(v) for v in batch.values()) >= 1
        await consumer.commit({TopicPartition(topic_name, 0): 3})
    finally:
        await consumer.stop()
    again = AIOKafkaConsumer(topic_name, bootstrap_servers=proxy.bootstrap, group_id=group,
                             auto_offset_reset="earliest")
    await again.start()
    try:
        assert await again.committed(TopicPartition(topic_name, 0)) == 3
        message = await asyncio.wait_for(again.getone(), 30)
        assert message.value == b"3"
    finally:
        await again.stop()


async def test_transactions(proxy, topic_name):
    await create_topic(proxy.bootstrap, topic_name)
    producer = AIOKafkaProducer(bootstrap_servers=proxy.bootstrap, transactional_id=unique("tx"))
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic_name, b"kept")
        await producer.begin_transaction()
        await producer.send(topic_name, b"dropped")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic_name, b"kept-too")
    finally:
        await producer.stop()
    values = await read(proxy.bootstrap, topic_name, 2, isolation_level="read_committed")
    assert values == [b"kept", b"kept-too"]


async def test_admin(proxy):
    name = unique("aio-admin")
    admin = AIOKafkaAdminClient(bootstrap_servers=proxy.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "compact"})])
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        entries = {e[0]: e[1] for e in described[0].resources[0][4]}
        assert entries["cleanup.policy"] == "compact"
        group = unique("g")
        consumer = AIOKafkaConsumer(name, bootstrap_servers=proxy.bootstrap, group_id=group)
        await consumer.start()
        await consumer.getmany(timeout_ms=500)
        groups = await admin.list_consumer_groups()
        await consumer.stop()
        assert group in {g[0] for g in groups}
        await admin.delete_topics([name])
        assert name not in await admin.list_topics()
    finally:
        await admin.close()
