"""Hostile and broken input gets a clean Kafka error or a clean close; the proxy keeps serving others."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
import uuid

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantry.protocol.envelope import request_frame
from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages.api_versions_request import ApiVersionsRequest
from tenantry.protocol.messages.api_versions_response import ApiVersionsResponse
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from tenantry.protocol.messages.metadata_request import MetadataRequest

from .conftest import start_proxy, stop_checked, stop_proxy
from .rawclient import call, closed_by_peer, connect, recv_frame, serves
from .relay import Relay

pytestmark = pytest.mark.integration


def header(api_key: int, version: int, corr: int = 7) -> bytes:
    return struct.pack(">hhih", api_key, version, corr, 4) + b"evil"


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def test_http_on_the_kafka_port_is_closed(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # "GET " reads as a 1.1 GB frame size
        assert closed_by_peer(sock)
    assert serves(proxy.bootstrap)


def test_oversize_frame_is_closed_before_it_is_read(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(struct.pack(">i", 200 * 1024 * 1024) + b"\x00" * 100)
        assert closed_by_peer(sock)
    assert serves(proxy.bootstrap)


def test_negative_frame_size_is_closed(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(struct.pack(">i", -5))
        assert closed_by_peer(sock)


def test_truncated_frame_then_disconnect_leaves_the_proxy_serving(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(struct.pack(">i", 1000) + header(3, 12))
    assert serves(proxy.bootstrap)


def test_frame_shorter_than_a_header_is_closed(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(frame(b"\x00\x03"))
        assert closed_by_peer(sock)


def test_unknown_api_key_is_closed(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(frame(header(999, 0)))
        assert closed_by_peer(sock)
    assert serves(proxy.bootstrap)


def test_unsupported_version_of_a_known_api_is_closed(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(frame(header(3, 99)))
        assert closed_by_peer(sock)


def test_api_not_offered_to_clients_is_closed(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(frame(header(55, 0)))  # DescribeQuorum: would reveal controller addresses
        assert closed_by_peer(sock)


def test_too_new_api_versions_request_gets_kip511_answer(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(frame(header(18, 99, corr=42) + b"\x00\x00"))
        response = recv_frame(sock)
    corr, error = struct.unpack(">ih", response[:6])  # response header v0, then an ApiVersions v0 body
    assert (corr, error) == (42, ErrorCode.UNSUPPORTED_VERSION)
    from tenantry.protocol import decode

    listed = decode(ApiVersionsResponse, response[4:], 0)
    assert {a.api_key for a in listed.api_keys} >= {0, 1, 3, 18}


def test_sasl_is_refused_on_a_plaintext_listener_as_a_broker_would(proxy):
    from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

    with connect(proxy.bootstrap) as sock:
        response = call(sock, SaslHandshakeRequest(mechanism="PLAIN"), 1)
    assert response.error_code == ErrorCode.ILLEGAL_SASL_STATE


def test_garbage_body_of_a_known_request_ends_in_a_clean_close(proxy):
    with connect(proxy.bootstrap) as sock:
        sock.sendall(frame(header(3, 12) + b"\x00" + b"\xff" * 64))
        assert closed_by_peer(sock, timeout=15)
    assert serves(proxy.bootstrap)


def test_pipelined_requests_are_answered_in_order(proxy):
    with connect(proxy.bootstrap) as sock:
        requests = [request_frame(MetadataRequest(topics=[]), 12, corr, "pipe") for corr in range(1, 30)]
        requests.insert(10, request_frame(ApiVersionsRequest(), 3, 1000, "pipe"))  # answered by the proxy
        sock.sendall(b"".join(requests))
        order = [struct.unpack(">i", recv_frame(sock)[:4])[0] for _ in requests]
    assert order == [*range(1, 11), 1000, *range(11, 30)]


def test_client_disconnect_mid_request_is_harmless(proxy):
    topic_id = uuid.uuid4()
    fetch = FetchRequest(max_wait_ms=3000, min_bytes=1_000_000, topics=[
        FetchTopic(topic_id=topic_id, partitions=[FetchPartition(partition=0, fetch_offset=0)])])
    for _ in range(5):
        with connect(proxy.bootstrap) as sock:
            sock.sendall(request_frame(fetch, 17, 1, "leaver"))
    assert serves(proxy.bootstrap)


@settings(max_examples=60)
@given(api_key=st.integers(-5, 100), version=st.integers(-2, 20), body=st.binary(max_size=120))
def test_fuzzed_frames_never_break_the_proxy(proxy, api_key, version, body):
    with connect(proxy.bootstrap, timeout=5) as sock:
        sock.sendall(frame(header(api_key, version) + body))
        sock.settimeout(5)
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            sock.recv(65536)  # a response, an error or a close: all acceptable
    assert serves(proxy.bootstrap)


def test_memory_stays_bounded_when_clients_announce_huge_frames(kafka, tmp_path):
    limited = start_proxy(kafka, tmp_path, "--max-buffered-bytes", str(64 * 1024 * 1024))
    try:
        process = psutil.Process(limited.process.pid)
        before = process.memory_info().rss
        sockets = []
        for _ in range(40):  # each announces 50 MB: 2 GB if the proxy allocated them all
            sock = connect(limited.bootstrap)
            sock.sendall(struct.pack(">i", 50 * 1024 * 1024) + header(0, 9) + b"\x00" * 1024)
            sockets.append(sock)
        time.sleep(1.0)
        grown = process.memory_info().rss - before
        assert serves(limited.bootstrap)  # small requests on other connections still flow
        for sock in sockets:
            sock.close()
        assert grown < 160 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MiB"
    finally:
        stop_checked(limited)


def test_broker_disconnect_mid_request_closes_only_that_client(kafka, tmp_path):
    relay = Relay(kafka.state.sasl_port)
    relayed = start_proxy(kafka, tmp_path, upstream=relay.address)
    try:
        fetch = FetchRequest(max_wait_ms=10_000, min_bytes=1_000_000, topics=[])
        with connect(relayed.bootstrap) as waiting:
            waiting.sendall(request_frame(fetch, 17, 1, "waiter"))
            time.sleep(0.5)
            relay.cut()
            assert closed_by_peer(waiting, timeout=10)
        assert serves(relayed.bootstrap)
        assert relayed.process.poll() is None
    finally:
        stop_proxy(relayed)
        relay.close()


def test_a_client_that_stops_reading_cannot_make_the_proxy_buffer_its_responses(kafka, proxy, tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"bp-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": proxy.bootstrap})
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": proxy.bootstrap, "linger.ms": 20})
    for _ in range(4000):
        producer.produce(topic, value=b"z" * 1000)  # ~4 MB of data to fetch over and over
    producer.flush(30)
    process = psutil.Process(proxy.process.pid)
    before = process.memory_info().rss
    fetch = FetchRequest(max_wait_ms=100, min_bytes=1, max_bytes=4_000_000, topics=[FetchTopic(
        topic=topic, partitions=[FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=4_000_000)])])
    with connect(proxy.bootstrap) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        # 100 pipelined fetches of ~4 MB each: 400 MB if the proxy buffered responses for a client
        # that reads nothing. It must instead stop reading from the broker.
        sock.sendall(b"".join(request_frame(fetch, 12, corr, "sleepy") for corr in range(1, 101)))
        time.sleep(3)
        grown = process.memory_info().rss - before
        first = recv_frame(sock)  # and the connection still works once the client reads again
        assert int.from_bytes(first[:4], "big") == 1
    assert grown < 64 * 1024 * 1024, f"proxy RSS grew by {grown / 2**20:.0f} MiB"
