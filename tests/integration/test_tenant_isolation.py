"""Two tenants use the same names at once; each sees and touches only its own (real broker, real clients)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import GROUP_PROTOCOLS, client_config, unique
from .helpers import assert_two_members_split_four_partitions, wait_for

pytestmark = pytest.mark.integration


def create(config: dict[str, object], *names: str, partitions: int = 1) -> None:
    admin = AdminClient(config)
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(30)


def produce(config: dict[str, object], topic: str, values: list[bytes], **extra: object) -> None:
    producer = Producer({**config, **extra})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def consume(config: dict[str, object], topic: str | list[str], group: str, count: int,
            **extra: object) -> list[bytes]:
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest", **extra})
    consumer.subscribe(topic if isinstance(topic, list) else [topic])
    got: list[bytes] = []

    def poll() -> bool:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            got.append(message.value())
        return len(got) >= count
    try:
        wait_for(poll, 60, f"{count} messages")
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def listed_groups(config: dict[str, object]) -> set[str]:
    admin = AdminClient(config)  # kept referenced until the future resolves, or librdkafka drops it
    return {g.group_id for g in admin.list_consumer_groups().result(30).valid}


def test_same_names_in_two_tenants_stay_apart(tenant_proxy, kafka):
    acme, globex = client_config(tenant_proxy, "alice"), client_config(tenant_proxy, "bob")
    topic = "orders"  # literally the same name in both tenants (no other test uses it)
    create(acme, topic)
    create(globex, topic)
    produce(acme, topic, [b"acme-1", b"acme-2"])
    produce(globex, topic, [b"globex-1"])
    assert consume(acme, topic, "billing", 2) == [b"acme-1", b"acme-2"]
    assert consume(globex, topic, "billing", 1) == [b"globex-1"]
    broker = AdminClient({"bootstrap.servers": kafka.bootstrap})
    names = set(broker.list_topics(timeout=10).topics)
    assert {f"acme.{topic}", f"globex.{topic}"} <= names and topic not in names
    groups = listed_groups({"bootstrap.servers": kafka.bootstrap})
    assert {"acme.billing", "globex.billing"} <= groups


def assert_all_owned(names: set[str], prefix: str, kafka) -> None:
    """Every name a tenant was shown exists on the broker under that tenant's prefix."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    on_broker = set(admin.list_topics(timeout=10).topics)
    assert {n for n in names if prefix + n not in on_broker} == set()


def test_a_tenant_lists_only_its_own_topics_and_groups(tenant_proxy, kafka):
    acme, globex = client_config(tenant_proxy, "alice"), client_config(tenant_proxy, "bob")
    mine, theirs = unique("mine"), unique("theirs")
    create(acme, mine)
    create(globex, theirs)
    listed = set(AdminClient(acme).list_topics(timeout=10).topics)
    assert mine in listed and theirs not in listed
    assert_all_owned(listed, "acme.", kafka)  # no internal topics, no other tenant's, no visible prefix
    produce(globex, theirs, [b"x"])
    their_group = unique("their-group")
    consume(globex, theirs, their_group, 1)
    assert their_group in listed_groups(globex)
    groups = listed_groups(acme)
    assert their_group not in groups and not any(g.startswith(("globex.", "acme.")) for g in groups)


def test_transactions_with_the_same_transactional_id(tenant_proxy):
    topic = unique("tx")
    for user in ("alice", "bob"):
        config = client_config(tenant_proxy, user)
        create(config, topic)
        producer = Producer({**config, "transactional.id": "tx-1"})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(topic, value=f"{user}-aborted".encode())
        producer.abort_transaction(30)
        producer.begin_transaction()
        producer.produce(topic, value=f"{user}-committed".encode())
        producer.commit_transaction(30)
    for user in ("alice", "bob"):
        config = client_config(tenant_proxy, user)
        values = consume(config, topic, unique("rc"), 1, **{"isolation.level": "read_committed"})
        assert values == [f"{user}-committed".encode()]


def test_plain_and_scram_users_of_one_tenant_share_its_namespace(tenant_proxy):
    topic = unique("shared")
    create(client_config(tenant_proxy, "alice"), topic)
    produce(client_config(tenant_proxy, "alicia"), topic, [b"from-plain"])
    assert consume(client_config(tenant_proxy, "alice"), topic, unique("g"), 1) == [b"from-plain"]


def test_wrong_password_fails_after_the_delay(tenant_proxy):
    admin = AdminClient(client_config(tenant_proxy, "alice", password="wrong"))
    start = time.monotonic()
    with pytest.raises(KafkaException) as failure:
        admin.list_topics(timeout=10)
    assert failure.value.args[0].code() in (KafkaError._AUTHENTICATION, KafkaError._TRANSPORT, KafkaError._TIMED_OUT)
    assert time.monotonic() - start >= 0.3


def test_unknown_user_fails_exactly_like_a_wrong_password(tenant_proxy):
    from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
    from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

    from .rawclient import call, closed_by_peer, connect

    answers = []
    for token in (b"\0alicia\0wrong", b"\0nobody\0wrong"):
        with connect(tenant_proxy.bootstrap) as sock:
            assert call(sock, SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == 0
            response = call(sock, SaslAuthenticateRequest(auth_bytes=token), 2, corr=2)
            answers.append((response.error_code, response.error_message))
            assert closed_by_peer(sock)
    assert answers[0] == answers[1] == (58, "Authentication failed: Invalid username or password")


@pytest.mark.parametrize("protocol", GROUP_PROTOCOLS)
def test_a_tenant_group_of_two_rebalances_with_either_protocol(tenant_proxy, protocol):
    config = client_config(tenant_proxy, "alice")
    topic = unique("rb")
    create(config, topic, partitions=4)
    settings = {**config, "group.id": unique("g"), "auto.offset.reset": "earliest", "group.protocol": protocol}
    assert_two_members_split_four_partitions(settings, topic)
