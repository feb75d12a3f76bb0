"""A hostile tenant (acme) attacks another (globex). Each attack is refused with the right error and
reveals nothing: one attack per test, real broker, real proxy."""

from __future__ import annotations

import socket
import struct
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages.api_versions_request import ApiVersionsRequest
from tenantry.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
from tenantry.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from tenantry.protocol.messages.delete_groups_request import DeleteGroupsRequest
from tenantry.protocol.messages.delete_topics_request import DeleteTopicsRequest, DeleteTopicState
from tenantry.protocol.messages.describe_configs_request import DescribeConfigsRequest, DescribeConfigsResource
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from tenantry.protocol.messages.list_transactions_request import ListTransactionsRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

from .conftest import TENANT_USERS, client_config, needs_kip848, unique
from .rawclient import call, closed_by_peer, connect
from .test_tenant_isolation import consume, create, listed_groups, produce

pytestmark = pytest.mark.integration
BROKER_RESOURCE = 4


def login(proxy, user: str) -> socket.socket:
    """A raw connection logged in with PLAIN as `user`."""
    sock = connect(proxy.bootstrap)
    assert call(sock, SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == 0
    password = TENANT_USERS[user][2]
    answer = call(sock, SaslAuthenticateRequest(auth_bytes=f"\0{user}\0{password}".encode()), 2, corr=2)
    assert answer.error_code == 0, answer.error_message
    return sock


@pytest.fixture(scope="module")
def victim(tenant_proxy, kafka):
    """globex's topic 'orders-…' with data, its group, and the topic's id as the broker knows it."""
    topic = unique("orders")
    globex = client_config(tenant_proxy, "bob")
    create(globex, topic)
    produce(globex, topic, [b"globex-secret"])
    group = unique("billing")
    consume(globex, topic, group, 1)
    broker = AdminClient({"bootstrap.servers": kafka.bootstrap})
    described = broker.describe_topics(__import__("confluent_kafka").TopicCollection([f"globex.{topic}"]))
    topic_id = next(iter(described.values())).result(30).topic_id  # librdkafka's Uuid: two signed halves
    as_int = ((topic_id.get_most_significant_bits() & (2**64 - 1)) << 64) | (
        topic_id.get_least_significant_bits() & (2**64 - 1))
    return {"topic": topic, "group": group, "topic_id": uuid.UUID(int=as_int), "config": globex, "admin": broker}


def metadata_for(sock, name: str):
    response = call(sock, MetadataRequest(topics=[MetadataRequestTopic(name=name)], allow_auto_topic_creation=True),
                    12, corr=5)
    return response.topics[0]


def test_the_other_tenants_name_without_prefix_is_just_an_unknown_topic(tenant_proxy, victim):
    with login(tenant_proxy, "alicia") as sock:
        topic = metadata_for(sock, victim["topic"])
    assert (topic.name, topic.error_code) == (victim["topic"], ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


def test_the_other_tenants_name_with_its_prefix_is_just_an_unknown_topic(tenant_proxy, victim):
    name = f"globex.{victim['topic']}"
    with login(tenant_proxy, "alicia") as sock:
        topic = metadata_for(sock, name)
    assert (topic.name, topic.error_code) == (name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


def test_auto_creation_through_metadata_is_off(tenant_proxy, kafka):
    name = unique("auto")
    with login(tenant_proxy, "alicia") as sock:
        assert metadata_for(sock, name).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert f"acme.{name}" not in AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics


def test_a_topic_id_read_from_the_broker_gets_unknown_topic_id_and_no_data(tenant_proxy, victim):
    fetch = FetchRequest(max_wait_ms=100, min_bytes=1, max_bytes=1_000_000, topics=[FetchTopic(
        topic_id=victim["topic_id"], partitions=[FetchPartition(partition=0, fetch_offset=0,
                                                                partition_max_bytes=1_000_000)])])
    with login(tenant_proxy, "alicia") as sock:
        response = call(sock, fetch, 13, corr=9)
    [topic] = response.responses
    assert topic.topic_id == victim["topic_id"]  # the client's own id comes back, not the proxy's stand-in
    assert [p.error_code for p in topic.partitions] == [ErrorCode.UNKNOWN_TOPIC_ID]
    assert not topic.partitions[0].records


def test_metadata_by_a_foreign_topic_id_reveals_nothing(tenant_proxy, victim):
    request = MetadataRequest(topics=[MetadataRequestTopic(topic_id=victim["topic_id"], name=None)])
    with login(tenant_proxy, "alicia") as sock:
        [topic] = call(sock, request, 12, corr=4).topics
    assert topic.error_code == ErrorCode.UNKNOWN_TOPIC_ID and topic.name is None


@needs_kip848
def test_a_regex_that_escapes_its_group_is_refused(tenant_proxy):
    heartbeat = ConsumerGroupHeartbeatRequest(group_id=unique("re"), member_id=str(uuid.uuid4()), member_epoch=0,
                                              rebalance_timeout_ms=30000, subscribed_topic_regex="x)|(.*")
    with login(tenant_proxy, "alicia") as sock:
        response = call(sock, heartbeat, 1, corr=3)
    assert response.error_code == ErrorCode.INVALID_REGULAR_EXPRESSION


@needs_kip848
def test_a_match_everything_regex_is_confined_to_the_tenant(tenant_proxy, kafka):
    from tenantry.protocol.messages.consumer_group_describe_request import ConsumerGroupDescribeRequest

    group = unique("re")
    heartbeat = ConsumerGroupHeartbeatRequest(group_id=group, member_id=str(uuid.uuid4()), member_epoch=0,
                                              rebalance_timeout_ms=30000, subscribed_topic_regex=".*",
                                              topic_partitions=[])
    with login(tenant_proxy, "alicia") as sock:
        assert call(sock, heartbeat, 1, corr=3).error_code == 0
        seen_by_tenant = call(sock, ConsumerGroupDescribeRequest(group_ids=[group]), 0, corr=4)
    with connect(kafka.bootstrap) as direct:
        on_broker = call(direct, ConsumerGroupDescribeRequest(group_ids=[f"acme.{group}"]), 0, corr=1)
    assert on_broker.groups[0].members[0].subscribed_topic_regex == r"acme\.(?:.*)"
    assert seen_by_tenant.groups[0].members[0].subscribed_topic_regex == ".*"


@pytest.mark.parametrize("name", ["", "x" * 250, "bad/name"])
def test_empty_overlong_and_illegal_topic_names_are_refused_without_leaking_the_prefix(tenant_proxy, name):
    request = CreateTopicsRequest(topics=[CreatableTopic(name=name, num_partitions=1, replication_factor=1)],
                                  timeout_ms=10000)
    with login(tenant_proxy, "alicia") as sock:
        [result] = call(sock, request, 7, corr=3).topics
    assert result.error_code == 17  # INVALID_TOPIC_EXCEPTION
    assert result.name == name and "acme." not in (result.error_message or "")


def test_a_name_with_the_other_tenants_prefix_stays_in_the_creators_namespace(tenant_proxy, kafka):
    lookalike = f"globex.{unique('lookalike')}"
    create(client_config(tenant_proxy, "alice"), lookalike)
    on_broker = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics
    assert f"acme.{lookalike}" in on_broker and lookalike not in on_broker
    assert lookalike.split(".", 1)[1] not in AdminClient(client_config(tenant_proxy, "bob")).list_topics(
        timeout=10).topics


def test_broker_configs_are_not_for_tenants(tenant_proxy):
    request = DescribeConfigsRequest(resources=[DescribeConfigsResource(resource_type=BROKER_RESOURCE,
                                                                         resource_name="1")])
    with login(tenant_proxy, "alicia") as sock:
        [result] = call(sock, request, 4, corr=3).results
    assert result.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def test_a_broker_resource_fails_alone_and_the_tenants_own_topic_is_answered(tenant_proxy):
    topic = unique("cfg")
    create(client_config(tenant_proxy, "alice"), topic)
    request = DescribeConfigsRequest(resources=[
        DescribeConfigsResource(resource_type=BROKER_RESOURCE, resource_name="1"),
        DescribeConfigsResource(resource_type=2, resource_name=topic, configuration_keys=["cleanup.policy"])])
    with login(tenant_proxy, "alicia") as sock:
        results = {r.resource_type: r for r in call(sock, request, 4, corr=3).results}
    assert results[BROKER_RESOURCE].error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    own = results[2]
    assert (own.error_code, own.resource_name) == (0, topic)
    assert [(c.name, c.value) for c in own.configs] == [("cleanup.policy", "delete")]


@pytest.mark.parametrize(("api_key", "name"), [(51, "AlterUserScramCredentials"), (45, "AlterPartitionReassignments"),
                                               (49, "AlterClientQuotas"), (38, "CreateDelegationToken"),
                                               (50, "DescribeUserScramCredentials"), (55, "DescribeQuorum"),
                                               (57, "UpdateFeatures"), (71, "GetTelemetrySubscriptions"),
                                               (72, "PushTelemetry")])
def test_cluster_admin_apis_are_absent_and_refused(tenant_proxy, api_key, name):
    with login(tenant_proxy, "alicia") as sock:
        offered = {a.api_key for a in call(sock, ApiVersionsRequest(), 3, corr=3).api_keys}
        assert api_key not in offered, name
        sock.sendall(struct.pack(">ihhih", 10, api_key, 0, 4, -1))
        assert closed_by_peer(sock), name


def test_transactions_are_listed_only_for_their_tenant(tenant_proxy):
    topic = unique("txl")
    for user in ("alice", "bob"):
        config = client_config(tenant_proxy, user)
        create(config, topic)
        producer = Producer({**config, "transactional.id": "shared-tx"})
        producer.init_transactions(30)
    with login(tenant_proxy, "alicia") as sock:
        states = call(sock, ListTransactionsRequest(), 1, corr=3).transaction_states
    assert [s.transactional_id for s in states].count("shared-tx") == 1
    assert all(not s.transactional_id.startswith(("acme.", "globex.")) for s in states)


def test_deleting_the_other_tenants_topic_deletes_nothing(tenant_proxy, victim, kafka):
    for name in (victim["topic"], f"globex.{victim['topic']}"):
        request = DeleteTopicsRequest(topics=[DeleteTopicState(name=name)], timeout_ms=10000)
        with login(tenant_proxy, "alicia") as sock:
            [result] = call(sock, request, 6, corr=3).responses
        assert result.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert f"globex.{victim['topic']}" in AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(
        timeout=10).topics


def test_deleting_the_other_tenants_topic_by_id_deletes_nothing(tenant_proxy, victim, kafka):
    request = DeleteTopicsRequest(topics=[DeleteTopicState(name=None, topic_id=victim["topic_id"])], timeout_ms=10000)
    with login(tenant_proxy, "alicia") as sock:
        [result] = call(sock, request, 6, corr=3).responses
    assert result.error_code == ErrorCode.UNKNOWN_TOPIC_ID and result.topic_id == victim["topic_id"]
    assert f"globex.{victim['topic']}" in AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(
        timeout=10).topics


def test_deleting_the_other_tenants_group_deletes_nothing(tenant_proxy, victim):
    for name in (victim["group"], f"globex.{victim['group']}"):
        with login(tenant_proxy, "alicia") as sock:
            [result] = call(sock, DeleteGroupsRequest(groups_names=[name]), 2, corr=3).results
        assert result.error_code == 69 and result.group_id == name  # GROUP_ID_NOT_FOUND
    assert victim["group"] in listed_groups(victim["config"])


def test_nothing_but_api_versions_and_sasl_before_login(tenant_proxy):
    with connect(tenant_proxy.bootstrap) as sock:
        assert call(sock, ApiVersionsRequest(), 3).error_code == 0
        sock.sendall(b"".join([struct.pack(">i", 12), struct.pack(">hhih", 3, 12, 5, -1), b"\x01\x00\x00\x00"]))
        assert closed_by_peer(sock)
