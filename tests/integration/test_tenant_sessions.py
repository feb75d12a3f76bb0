"""SASL sessions at the proxy: the old handshake, session expiry and KIP-368 re-authentication."""

from __future__ import annotations

import struct
import time

import pytest
from confluent_kafka import Producer

from tenantry.protocol.messages.describe_topic_partitions_request import DescribeTopicPartitionsRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

from .conftest import TENANT_USERS, client_config, start_proxy, stop_checked, unique, write_tenants
from .rawclient import call, closed_by_peer, connect, recv_exact
from .test_hostile_tenant import login
from .test_tenant_isolation import assert_all_owned, create

pytestmark = pytest.mark.integration


def test_sasl_handshake_v0_is_followed_by_bare_tokens(tenant_proxy):
    with connect(tenant_proxy.bootstrap) as sock:
        assert call(sock, SaslHandshakeRequest(mechanism="PLAIN"), 0).error_code == 0
        token = f"\0alicia\0{TENANT_USERS['alicia'][2]}".encode()
        sock.sendall(struct.pack(">i", len(token)) + token)  # no Kafka header: KIP-152's v0 framing
        assert struct.unpack(">i", recv_exact(sock, 4))[0] == 0  # an empty PLAIN answer
        assert call(sock, MetadataRequest(topics=[]), 12, corr=3).brokers


def test_a_wrong_password_after_handshake_v0_closes_without_an_answer(tenant_proxy):
    with connect(tenant_proxy.bootstrap) as sock:
        assert call(sock, SaslHandshakeRequest(mechanism="PLAIN"), 0).error_code == 0
        token = b"\0alicia\0wrong"
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert closed_by_peer(sock)


@pytest.fixture
def short_sessions(kafka, tmp_path_factory):
    """A proxy of its own per test, so each test reads only its own log."""
    workdir = tmp_path_factory.mktemp("short-sessions")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--sasl-session-lifetime-ms", "2000")
    yield proxy
    stop_checked(proxy)


def test_an_expired_session_is_closed_on_its_next_request(short_sessions):
    with login(short_sessions, "alicia") as sock:
        assert call(sock, MetadataRequest(topics=[]), 12, corr=3).brokers
        time.sleep(2.2)
        sock.sendall(b"".join([struct.pack(">i", 12), struct.pack(">hhih", 3, 12, 5, -1), b"\x01\x00\x00\x00"]))
        assert closed_by_peer(sock)


def test_clients_re_authenticate_before_expiry_and_keep_working(short_sessions):
    config = client_config(short_sessions, "alice")
    topic = unique("reauth")
    create(config, topic)
    producer = Producer(config)
    errors, delivered = [], []
    deadline = time.monotonic() + 6  # three session lifetimes
    while time.monotonic() < deadline:
        producer.produce(topic, value=b"tick", on_delivery=lambda e, m: (errors if e else delivered).append(e or m))
        producer.poll(0.2)
    assert producer.flush(30) == 0
    assert errors == [] and len(delivered) > 20
    log = short_sessions.log_text()
    assert "re-authenticated as alice" in log  # KIP-368 happened on the live connections...
    assert "SASL session expired" not in log  # ...so no session ran out and was cut off


def test_describe_topic_partitions_lists_only_the_tenants_topics_across_pages(tenant_proxy, kafka):
    mine = sorted(unique(f"dtp{i}") for i in range(3))
    theirs = unique("dtp-other")
    create(client_config(tenant_proxy, "alice"), *mine)
    create(client_config(tenant_proxy, "bob"), theirs)
    names, pairs, cursor = [], [], None
    with login(tenant_proxy, "alicia") as sock:
        for page in range(200):  # one partition per page: the cursor must carry the listing along
            request = DescribeTopicPartitionsRequest(topics=[], response_partition_limit=1, cursor=cursor)
            response = call(sock, request, 0, corr=10 + page)
            names += [t.name for t in response.topics]
            pairs += [(t.name, p.partition_index) for t in response.topics for p in t.partitions]
            cursor = response.next_cursor
            if cursor is None:
                break
    assert cursor is None, "the listing did not end within 200 pages"
    assert set(mine) <= set(names) and theirs not in names
    assert len(pairs) == len(set(pairs))  # each partition once: the cursor neither repeats nor goes back
    assert_all_owned(set(names), "acme.", kafka)


def test_a_logged_in_connection_opens_its_broker_connection_with_its_first_request(tenant_proxy, kafka):
    import psutil

    from .rawclient import plain_login

    broker_port = int(kafka.sasl_bootstrap.rsplit(":", 1)[1])

    def to_broker() -> set[int]:
        """Local ports of the proxy's connections to the broker (closing ones may leave; none may appear)."""
        return {c.laddr.port for c in psutil.Process(tenant_proxy.process.pid).net_connections(kind="tcp")
                if c.raddr and c.raddr.port == broker_port and c.status == psutil.CONN_ESTABLISHED}
    def new_and_lasting(before: set[int]) -> set[int]:
        """New broker connections still open half a second later (a health check's lasts milliseconds)."""
        first = to_broker() - before
        time.sleep(0.5)
        return first & to_broker()
    before = to_broker()
    sock = plain_login(tenant_proxy.bootstrap, "alicia", TENANT_USERS["alicia"][2])
    assert sock is not None
    try:
        time.sleep(0.5)
        assert not new_and_lasting(before)  # idle after login: no broker connection yet
        metadata = call(sock, MetadataRequest(topics=[]), 12, corr=3)
        assert metadata.brokers  # served, through a broker connection opened for it
        assert len(new_and_lasting(before)) == 1
    finally:
        sock.close()
