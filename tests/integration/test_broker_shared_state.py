"""Broker state that every tenant reaches through the proxy's one service user, attacked by a hostile tenant
(acme) against another (globex): real broker, real proxy, raw frames."""

from __future__ import annotations

import random

import pytest

from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic

from .rawclient import call
from .test_hostile_tenant import login, victim  # noqa: F401  (the victim fixture: globex's topic with data)

pytestmark = pytest.mark.integration
FETCH_VERSION = 13  # topic ids and sessions


def session_fetch(session_id: int, epoch: int, topic_id=None) -> FetchRequest:
    topics = [] if topic_id is None else [FetchTopic(topic_id=topic_id, partitions=[FetchPartition(
        partition=0, fetch_offset=0, partition_max_bytes=1_000_000)])]
    return FetchRequest(max_wait_ms=10, min_bytes=0, max_bytes=1_000_000, session_id=session_id,
                        session_epoch=epoch, topics=topics)


def test_a_fetch_session_belongs_to_the_tenant_that_opened_it(tenant_proxy, victim):  # noqa: F811
    with login(tenant_proxy, "bea") as globex, login(tenant_proxy, "alicia") as acme:
        opened = call(globex, session_fetch(0, 0, victim["topic_id"]), FETCH_VERSION, corr=3)
        assert opened.error_code == 0 and opened.session_id != 0
        session = opened.session_id
        assert call(globex, session_fetch(session, 1), FETCH_VERSION, corr=4).error_code == 0

        # acme names globex's live session with its current epoch: no records, no raw topic id, and the
        # broker never sees it, so globex's epoch does not move.
        stolen = call(acme, session_fetch(session, 2), FETCH_VERSION, corr=3)
        assert stolen.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
        assert stolen.session_id == 0 and stolen.responses == []
        assert call(globex, session_fetch(session, 2), FETCH_VERSION, corr=5).error_code == 0

        # Closing it (epoch -1) is refused the same way; globex's session lives on.
        closed = call(acme, session_fetch(session, -1), FETCH_VERSION, corr=4)
        assert closed.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
        assert call(globex, session_fetch(session, 3), FETCH_VERSION, corr=6).error_code == 0


def test_a_live_foreign_session_and_a_random_id_are_indistinguishable(tenant_proxy, victim):  # noqa: F811
    with login(tenant_proxy, "bea") as globex, login(tenant_proxy, "alicia") as acme:
        session = call(globex, session_fetch(0, 0, victim["topic_id"]), FETCH_VERSION, corr=3).session_id
        answers = []
        for corr, (session_id, epoch) in enumerate([(session, 1), (session, 7), (random.randrange(1, 2**31), 1)]):
            answer = call(acme, session_fetch(session_id, epoch), FETCH_VERSION, corr=10 + corr)
            answers.append((answer.error_code, answer.session_id, answer.responses, answer.throttle_time_ms))
        assert answers[0] == answers[1] == answers[2]
        assert answers[0][0] == ErrorCode.FETCH_SESSION_ID_NOT_FOUND


@pytest.mark.parametrize("version", [1, 3])
def test_metadata_before_v4_creates_no_topic(tenant_proxy, kafka, version):
    import time

    from confluent_kafka.admin import AdminClient

    from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic

    from .conftest import unique

    name = unique("implicit")
    with login(tenant_proxy, "alicia") as sock:
        answer = call(sock, MetadataRequest(topics=[MetadataRequestTopic(name=name)]), version, corr=3)
    assert [(t.name, t.error_code) for t in answer.topics] == [(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    time.sleep(2)  # a creation the broker had started would show by now
    assert f"acme.{name}" not in AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics


def _sockets(pid: int) -> int:
    import psutil

    return len(psutil.Process(pid).net_connections(kind="tcp"))


@pytest.mark.parametrize("attack", ["null subscription", "nine bytes"])
def test_a_malformed_first_request_while_the_broker_connection_opens_leaves_nothing_open(tenant_proxy, attack):
    import time

    from tenantry.protocol.messages.join_group_request import JoinGroupRequest, JoinGroupRequestProtocol

    from .rawclient import closed_by_peer

    null_topics = b"\x00\x01" + b"\xff\xff\xff\xff"  # consumer protocol v1 whose topic array is null
    join = JoinGroupRequest(group_id="g", session_timeout_ms=10_000, member_id="", protocol_type="consumer",
                            protocols=[JoinGroupRequestProtocol(name="range", metadata=null_topics)])
    time.sleep(1)
    baseline = _sockets(tenant_proxy.process.pid)
    for _ in range(5):
        sock = login(tenant_proxy, "alicia")  # no broker connection yet: it opens with the next request
        if attack == "null subscription":
            from tenantry.protocol import encode
            from tenantry.protocol.headers import encode_request_header

            body = encode_request_header(11, 9, 3, "x") + encode(join, 9)
        else:
            body = b"\x00\x03\x00\x0c\x00\x00\x00\x03\x00"  # Metadata v12, cut after 9 bytes
        sock.sendall(len(body).to_bytes(4, "big") + body)
        assert closed_by_peer(sock)
        sock.close()
    deadline = time.monotonic() + 20
    while _sockets(tenant_proxy.process.pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sockets(tenant_proxy.process.pid) <= baseline
    assert "never retrieved" not in tenant_proxy.log_text()


def test_another_tenants_producer_id_touches_only_the_users_own_partitions(tenant_proxy, victim):  # noqa: F811
    from kafka.record.default_records import DefaultRecordBatchBuilder

    from tenantry.protocol.messages.init_producer_id_request import InitProducerIdRequest
    from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData

    from .conftest import client_config, unique
    from .test_tenant_isolation import create

    def batch(producer_id: int, epoch: int, sequence: int) -> bytes:
        builder = DefaultRecordBatchBuilder(2, 0, False, producer_id, epoch, sequence, 1 << 20)
        builder.append(0, timestamp=None, key=None, value=b"v", headers=[])
        return bytes(builder.build())

    def produce(sock, topic: str, records: bytes, corr: int) -> int:
        request = ProduceRequest(acks=-1, timeout_ms=10_000, topic_data=[TopicProduceData(
            name=topic, partition_data=[PartitionProduceData(index=0, records=records)])])
        return call(sock, request, 9, corr=corr).responses[0].partition_responses[0].error_code

    own_topic = unique("mine")
    create(client_config(tenant_proxy, "alicia"), own_topic)
    with login(tenant_proxy, "bea") as globex, login(tenant_proxy, "alicia") as acme:
        import time

        deadline = time.monotonic() + 30
        while True:  # a new broker answers COORDINATOR_LOAD_IN_PROGRESS for a while; clients retry
            pid = call(globex, InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000), 4, corr=3)
            if pid.error_code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert pid.error_code == 0
        assert produce(globex, victim["topic"], batch(pid.producer_id, pid.producer_epoch, 0), 4) == 0
        # acme writes with globex's producer id and epoch, continuing its sequence, to acme's own topic
        produce(acme, own_topic, batch(pid.producer_id, pid.producer_epoch, 1), 3)
        # globex's next sequence on its own partition is unaffected
        assert produce(globex, victim["topic"], batch(pid.producer_id, pid.producer_epoch, 1), 5) == 0
