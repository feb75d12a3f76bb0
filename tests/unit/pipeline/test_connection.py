"""A client connection driven through a fake transport and a fake broker: order, closes and pipelining.

The pipeline's stages are real; only the socket, the server's shared state and the broker are fakes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import pytest

from tenantry.protocol import encode
from tenantry.protocol.headers import encode_request_header, encode_response_header
from tenantry.protocol.messages.api_versions_request import ApiVersionsRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.protocol.messages.metadata_response import MetadataResponse
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.protocol.primitives import INT32
from tenantry.protocol.schema import Message
from tenantry.proxy.api_versions import PROXY_VERSIONS
from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.connection import ClientConnection
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.guard import Guard
from tenantry.proxy.memory import MemoryBudget
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.rewrite.topic_ids import TopicIds
from tenantry.proxy.stats import Stats
from tests.unit.pipeline.fakes import registry
from tests.unit.pipeline.test_stages import produce


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.paused = False
        self.closing = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else None

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.written += chunk

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def correlation_ids(self) -> list[int]:
        ids, pos = [], 0
        while pos < len(self.written):
            size = INT32.unpack_from(self.written, pos)[0]
            ids.append(INT32.unpack_from(self.written, pos + 4)[0])
            pos += 4 + size
        return ids


class FakeUpstream:
    def __init__(self) -> None:
        self.table = dict(PROXY_VERSIONS)
        self.broker_versions = None
        self.owner: Any = None
        self.closed = False
        self.reauthenticating = False
        self.pending: deque[Any] = deque()
        self.forwarded: list[Exchange | None] = []
        self.broker = "1"

    def forward(self, parts: list[Any], entry: Exchange | None) -> None:
        self.forwarded.append(entry)

    def answer(self, entry: Exchange, response: Message) -> None:
        frame = memoryview(encode_response_header(99, 1 if entry.api_version >= 9 else 0)
                           + encode(response, entry.api_version))
        self.owner.on_upstream_response(entry, frame)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class FakeServer:
    def __init__(self, tenants: bool) -> None:
        self.config = ProxyConfig(upstream=["127.0.0.1:9092"], auth_failure_delay_ms=0,
                                  listener_security_protocol="SASL_PLAINTEXT" if tenants else "PLAINTEXT")
        self.memory = MemoryBudget(1 << 20)
        self.stats = Stats()
        self.connections: set[ClientConnection] = set()
        self.quotas = QuotaBook(self.config)
        self.registry = registry()
        self.secret = b"s" * 32
        self.topic_ids = TopicIds()
        self.guard = Guard()
        self.api_table = dict(PROXY_VERSIONS)
        self.broker_versions = None
        self.broker_open = asyncio.Event()  # the test says when the broker connection is up
        self.upstreams: list[FakeUpstream] = []

    def login_registry(self) -> Any:
        return self.registry

    async def open_upstream(self, node_id: int | None, owner: Any) -> FakeUpstream:
        await self.broker_open.wait()
        upstream = FakeUpstream()
        upstream.owner = owner
        self.upstreams.append(upstream)
        return upstream

    def learn_brokers(self, seen: Any) -> None:
        return None


def frame(message: Message, version: int, corr: int) -> bytes:
    assert message.API_KEY is not None
    body = encode_request_header(message.API_KEY, version, corr, "app") + encode(message, version)
    return INT32.pack(len(body)) + body


def connect(server: FakeServer) -> tuple[ClientConnection, FakeTransport]:
    conn = ClientConnection(server, None)  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def send(conn: ClientConnection, data: bytes) -> None:
    while data:
        buffer = conn.get_buffer(len(data))
        n = min(len(buffer), len(data))
        buffer[:n] = data[:n]
        conn.buffer_updated(n)
        data = data[n:]


async def settle() -> None:
    for _ in range(20):  # let suspended stages (threads, futures) finish
        await asyncio.sleep(0.01)


LOGIN = (frame(SaslHandshakeRequest(mechanism="PLAIN"), 1, 2)
         + frame(SaslAuthenticateRequest(auth_bytes=b"\0alice\0secret"), 2, 3))


async def test_responses_keep_request_order_behind_a_suspended_exchange():
    server = FakeServer(tenants=True)
    conn, transport = connect(server)
    send(conn, frame(ApiVersionsRequest(), 3, 1) + LOGIN + frame(MetadataRequest(topics=[]), 12, 4)
         + frame(ApiVersionsRequest(), 3, 5))
    await settle()
    assert transport.correlation_ids() == [1, 2, 3]  # Metadata waits for the broker; ApiVersions 5 waits behind it
    assert transport.paused
    server.broker_open.set()
    await settle()
    upstream = server.upstreams[0]
    [metadata] = upstream.forwarded
    assert metadata is not None and metadata.client_corr == 4
    assert transport.correlation_ids() == [1, 2, 3]  # 5 is answered, but must not overtake 4
    upstream.answer(metadata, MetadataResponse())
    assert transport.correlation_ids() == [1, 2, 3, 4, 5]
    assert not transport.paused and server.stats.tenant("acme").requests[3] == 1  # counted once


async def test_a_close_while_suspended_leaves_nothing_behind(caplog):
    server = FakeServer(tenants=True)
    conn, transport = connect(server)
    send(conn, LOGIN + frame(MetadataRequest(topics=[]), 12, 4))
    await settle()
    conn.close("test")
    conn.connection_lost(None)
    server.broker_open.set()
    await settle()
    assert transport.closing and conn.done.done() and not server.connections
    assert all(upstream.closed for upstream in server.upstreams)  # the broker connection opened late is closed
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_malformed_frame_behind_a_suspended_exchange_closes_after_it():
    server = FakeServer(tenants=True)
    conn, transport = connect(server)
    send(conn, LOGIN + frame(MetadataRequest(topics=[]), 12, 4) + INT32.pack(3) + b"\x00\x03\x00")
    await settle()
    assert not transport.closing  # the bad frame has not been looked at yet
    server.broker_open.set()
    await settle()
    assert transport.closing and conn.closed
    assert server.upstreams[0].closed


async def test_pipelined_produce_with_acks_0_gets_no_response_and_keeps_the_order():
    server = FakeServer(tenants=False)
    server.broker_open.set()
    conn, transport = connect(server)
    await settle()
    send(conn, frame(produce(acks=0), 9, 1) + frame(MetadataRequest(topics=[]), 12, 2)
         + frame(produce(acks=0), 9, 3) + frame(MetadataRequest(topics=[]), 12, 4))
    upstream = server.upstreams[0]
    assert [e.client_corr if e else None for e in upstream.forwarded] == [None, 2, None, 4]
    upstream.answer(upstream.forwarded[1], MetadataResponse())  # type: ignore[arg-type]
    upstream.answer(upstream.forwarded[3], MetadataResponse())  # type: ignore[arg-type]
    assert transport.correlation_ids() == [2, 4]


async def test_a_request_before_login_closes_the_connection():
    server = FakeServer(tenants=True)
    conn, transport = connect(server)
    send(conn, frame(MetadataRequest(topics=[]), 12, 1))
    assert transport.closing and transport.correlation_ids() == []


@pytest.mark.parametrize("garbage", [b"\x00\x01", b"\x7f\x7f\x00\x01\x00\x00\x00\x01\xff\xff"])
async def test_garbage_closes_the_connection_cleanly(garbage):
    server = FakeServer(tenants=True)
    conn, transport = connect(server)
    send(conn, INT32.pack(len(garbage)) + garbage)
    assert transport.closing
