"""The broker as a second line of defence: with an authorizer on the brokers, tenants reach them as their
own broker users, held to their prefixes by ACLs. With the proxy's own ownership checks switched off (a
test-only switch), the broker alone refuses cross-tenant reads, writes and fetch-session use."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from tenantry.localkafka import KafkaBroker
from tenantry.localkafka.broker import AUTHORIZER
from tenantry.protocol.messages.describe_acls_request import DescribeAclsRequest
from tenantry.protocol.messages.describe_user_scram_credentials_request import DescribeUserScramCredentialsRequest
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

from .conftest import (
    KAFKA_VERSION,
    TENANT_USERS,
    RunningProxy,
    client_config,
    start_proxy,
    stop_checked,
    unique,
    write_tenants,
)
from .rawclient import call, connect
from .test_tenant_isolation import consume, create, produce

pytestmark = pytest.mark.integration
TOPIC_AUTHORIZATION_FAILED = 29


@pytest.fixture(scope="module")
def acl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path_factory.mktemp("acl-kafka"), version=KAFKA_VERSION, extra_properties=AUTHORIZER)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def acl_proxy(acl_kafka: KafkaBroker,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningProxy, object]]:
    workdir = tmp_path_factory.mktemp("acl-proxy")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    os.environ["TENANTRY_TEST_ONLY_SKIP_OWNERSHIP_CHECKS"] = "1"
    try:
        running = start_proxy(acl_kafka, workdir, "--config", str(config), "--listener-security-protocol",
                              "SASL_PLAINTEXT", "--config-poll-seconds", "0.5")
    finally:
        del os.environ["TENANTRY_TEST_ONLY_SKIP_OWNERSHIP_CHECKS"]
    try:
        yield running, config
    finally:
        stop_checked(running)


def login(proxy: RunningProxy, user: str):
    sock = connect(proxy.bootstrap)
    assert call(sock, SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == 0
    answer = call(sock, SaslAuthenticateRequest(auth_bytes=f"\0{user}\0{TENANT_USERS[user][2]}".encode()), 2, corr=2)
    assert answer.error_code == 0, answer.error_message
    return sock


def broker_acls(kafka: KafkaBroker, principal: str) -> set[tuple[int, str, int, int]]:
    with connect(kafka.bootstrap) as sock:  # PLAINTEXT: a super user here
        answer = call(sock, DescribeAclsRequest(
            resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1, principal_filter=principal,
            host_filter=None, operation=1, permission_type=1), 3)
    return {(r.resource_type, r.resource_name, r.pattern_type, a.operation) for r in answer.resources for a in r.acls}


def broker_users(kafka: KafkaBroker) -> set[str]:
    with connect(kafka.bootstrap) as sock:
        answer = call(sock, DescribeUserScramCredentialsRequest(users=None), 0)
    return {r.user for r in answer.results if r.error_code == 0}


def topic_id(kafka: KafkaBroker, name: str) -> uuid.UUID:
    from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic

    with connect(kafka.bootstrap) as sock:
        return call(sock, MetadataRequest(topics=[MetadataRequestTopic(name=name)]), 12).topics[0].topic_id


def test_each_tenant_has_a_broker_user_held_to_its_prefix(acl_proxy, acl_kafka):
    assert {"tenantry-tenant-acme", "tenantry-tenant-globex"} <= broker_users(acl_kafka)
    acls = broker_acls(acl_kafka, "User:tenantry-tenant-acme")
    # topics, groups and transactional ids: PREFIXED, all operations
    assert {(2, "acme.", 4, 2), (3, "acme.", 4, 2), (5, "acme.", 4, 2)} <= acls
    assert not [a for a in acls if a[1].startswith("globex")]


def test_tenants_work_as_their_broker_users(acl_proxy):
    proxy, _ = acl_proxy
    config = client_config(proxy, "alice")
    topic = unique("own")
    create(config, topic)
    produce(config, topic, [b"a", b"b"], **{"enable.idempotence": True})
    assert sorted(consume(config, topic, unique("g"), 2)) == [b"a", b"b"]


@pytest.fixture(scope="module")
def globex_topic(acl_proxy, acl_kafka):
    proxy, _ = acl_proxy
    topic = unique("secret")
    bob = client_config(proxy, "bob")
    create(bob, topic)
    produce(bob, topic, [b"globex-secret"])
    return topic, topic_id(acl_kafka, f"globex.{topic}")


def test_the_broker_alone_refuses_a_read_by_another_tenants_topic_id(acl_proxy, globex_topic):
    proxy, _ = acl_proxy
    _, victim_id = globex_topic
    fetch = FetchRequest(max_wait_ms=100, min_bytes=1, max_bytes=1_000_000, topics=[FetchTopic(
        topic_id=victim_id, partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1_000_000)])])
    with login(proxy, "alicia") as sock:
        response = call(sock, fetch, 13, corr=3)
    partitions = [p for t in response.responses for p in t.partitions]
    assert [p.error_code for p in partitions] == [TOPIC_AUTHORIZATION_FAILED]
    assert not partitions[0].records


def test_the_broker_alone_refuses_a_write_by_another_tenants_topic_id(acl_proxy, acl_kafka, globex_topic):
    from kafka.record.default_records import DefaultRecordBatchBuilder

    proxy, _ = acl_proxy
    _, victim_id = globex_topic
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    builder.append(0, timestamp=None, key=None, value=b"forged", headers=[])
    request = ProduceRequest(acks=-1, timeout_ms=10_000, topic_data=[TopicProduceData(
        topic_id=victim_id, partition_data=[PartitionProduceData(index=0, records=bytes(builder.build()))])])
    with login(proxy, "alicia") as sock:
        response = call(sock, request, 13, corr=3)
    assert [p.error_code for t in response.responses for p in t.partition_responses] == [TOPIC_AUTHORIZATION_FAILED]


def test_the_broker_alone_keeps_another_tenants_fetch_session_from_reading(acl_proxy, globex_topic):
    proxy, _ = acl_proxy
    _, victim_id = globex_topic
    opening = FetchRequest(max_wait_ms=10, min_bytes=0, max_bytes=1_000_000, session_id=0, session_epoch=0,
                           topics=[FetchTopic(topic_id=victim_id, partitions=[FetchPartition(
                               partition=0, fetch_offset=0, partition_max_bytes=1_000_000)])])
    with login(proxy, "bea") as globex, login(proxy, "alicia") as acme:
        session = call(globex, opening, 13, corr=3).session_id
        assert session != 0
        stolen = call(acme, FetchRequest(max_wait_ms=10, min_bytes=0, max_bytes=1_000_000, session_id=session,
                                         session_epoch=1), 13, corr=3)
    records = [p.records for t in stolen.responses for p in t.partitions if p.records]
    assert not records, "the broker served another tenant's session"
    assert stolen.error_code != 0 or all(p.error_code == TOPIC_AUTHORIZATION_FAILED
                                         for t in stolen.responses for p in t.partitions)


def test_removing_a_tenant_removes_its_broker_user_and_acls(acl_proxy, acl_kafka):
    _, config = acl_proxy
    subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", "tenant", "remove", "globex", "--config", str(config)],
                   check=True, capture_output=True, input="y\n", text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and ("tenantry-tenant-globex" in broker_users(acl_kafka)
                                           or broker_acls(acl_kafka, "User:tenantry-tenant-globex")):
        time.sleep(0.5)
    assert "tenantry-tenant-globex" not in broker_users(acl_kafka)
    assert not broker_acls(acl_kafka, "User:tenantry-tenant-globex")
    assert "tenantry-tenant-acme" in broker_users(acl_kafka)


