"""The end-to-end probe never disturbs the tenant it watches."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from .conftest import GROUP_PROTOCOLS, client_config, start_proxy, stop_checked, unique, write_tenants
from .helpers import wait_for
from .test_tenant_isolation import create, produce


@pytest.mark.parametrize("protocol", GROUP_PROTOCOLS)
def test_a_tenants_consumer_reads_its_committed_offsets_while_the_probe_runs(kafka, tmp_path, protocol):
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(kafka, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--probe-tenants", "acme")
    try:
        wait_for(lambda: "tenantry:probe:acme" in proxy.log_text(), 60, "the probe to log in")
        acme = client_config(proxy, "alice")
        for round_ in range(3):
            topic, group = unique("probe-commit"), unique("probe-group")
            create(acme, topic)
            produce(acme, topic, [b"a", b"b", b"c"])
            consumer = Consumer({**acme, "group.id": group, "auto.offset.reset": "earliest",
                                 "enable.auto.commit": False, "group.protocol": protocol})
            try:
                consumer.subscribe([topic])
                got = []
                deadline = time.monotonic() + 30
                while len(got) < 3 and time.monotonic() < deadline:
                    message = consumer.poll(0.5)
                    if message is not None and not message.error():
                        got.append(message)
                assert len(got) == 3, round_
                consumer.commit(message=got[-1], asynchronous=False)
                [committed] = consumer.committed([TopicPartition(topic, 0)], timeout=20)
                assert committed.offset == 3 and committed.error is None
            finally:
                consumer.close()
    finally:
        stop_checked(proxy)
