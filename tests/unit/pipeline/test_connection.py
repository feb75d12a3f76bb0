"""A client connection driven through a fake transport and a fake broker: order, closes and pipelining.

The pipeline's stages are real; only the socket, the server's shared state and the broker are fakes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from benchmarks.inprocess import FakeServer, connect, frame, send
from tenantry.protocol.messages.api_versions_request import ApiVersionsRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.protocol.messages.metadata_response import MetadataResponse
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.protocol.primitives import INT32
from tests.unit.pipeline.test_stages import produce

# Worker-thread jobs of the connection (SASL steps and the like): [out now, handed out in all].
_thread_jobs = [0, 0]


@pytest.fixture(autouse=True)
async def count_thread_jobs() -> AsyncIterator[None]:
    """Count the connection's worker-thread jobs, so settle() waits for them and not for a fixed time: a
    PLAIN login's scrypt takes 50 ms on a quiet machine and several times that on a busy one."""
    loop = asyncio.get_running_loop()  # the tests' own loop (the fixture runs in it)
    original = loop.run_in_executor

    def counted(executor, fn, *args):  # type: ignore[no-untyped-def]
        _thread_jobs[0] += 1
        _thread_jobs[1] += 1
        future = original(executor, fn, *args)
        future.add_done_callback(lambda _: _thread_jobs.__setitem__(0, _thread_jobs[0] - 1))
        return future
    loop.run_in_executor = counted  # type: ignore[method-assign]
    yield
    del loop.run_in_executor


async def settle() -> None:
    """Let the stages run: until no worker-thread job is out (up to 30 s), then a few loop turns more."""
    for turn in range(3000):
        await asyncio.sleep(0.01)
        if turn >= 5 and _thread_jobs[0] == 0:
            break
    for _ in range(5):
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


async def test_a_broker_reauthentication_during_a_guard_rail_check_loses_no_request():
    # Before the pipeline, a re-authentication starting while a guard rail held requests replaced the
    # held list, and those requests were never answered.
    from benchmarks.inprocess import acme
    from tenantry.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
    from tenantry.protocol.messages.create_topics_response import CreateTopicsResponse

    server = FakeServer(tenants=True, registry=acme(limits={"max_topics": 5}))
    server.broker_open.set()
    conn, transport = connect(server)
    send(conn, LOGIN + frame(MetadataRequest(topics=[]), 12, 4))
    await settle()
    upstream = server.upstreams[0]
    upstream.answer(upstream.forwarded.pop(), MetadataResponse())
    upstream.answering.clear()  # the guard's question to the broker waits
    create = CreateTopicsRequest(topics=[CreatableTopic(name="t", num_partitions=1, replication_factor=-1)])
    send(conn, frame(create, 7, 5) + frame(MetadataRequest(topics=[]), 12, 6))
    await settle()
    conn.on_reauthentication(True)
    upstream.answering.set()
    await settle()
    assert upstream.forwarded == []  # checked, but waiting for the broker login
    conn.on_reauthentication(False)
    await settle()
    assert [e.client_corr for e in upstream.forwarded] == [5, 6]
    upstream.answer(upstream.forwarded[0], CreateTopicsResponse())
    upstream.answer(upstream.forwarded[1], MetadataResponse())
    assert transport.correlation_ids() == [2, 3, 4, 5, 6]


async def test_a_connection_that_does_not_log_in_in_time_is_closed():
    server = FakeServer(tenants=True, login_timeout_ms=50)
    conn, transport = connect(server)
    await asyncio.sleep(0.2)
    assert transport.closing
    conn.connection_lost(None)  # as the event loop reports the close
    assert not server.prelogin.by_ip


async def test_before_login_frames_are_capped_at_the_sasl_size_and_after_login_at_the_general_one():
    server = FakeServer(tenants=True, sasl_max_receive_bytes=1000)
    conn, transport = connect(server)
    send(conn, INT32.pack(1001))
    assert transport.closing
    conn, transport = connect(server)
    send(conn, LOGIN)
    await settle()
    send(conn, INT32.pack(1001) + b"\x00\x03")  # a large request, arriving slowly
    assert not transport.closing


async def test_each_ip_holds_a_limited_number_of_connections_before_login():
    server = FakeServer(tenants=True, max_unauthenticated_connections_per_ip=2)
    first, _ = connect(server)
    connect(server)
    _, third_transport = connect(server)
    assert third_transport.closing
    assert server.stats.tenant("").connections_refused["unauthenticated_per_ip"] == 1
    send(first, LOGIN)  # a login frees its place
    await settle()
    _, fourth = connect(server)
    assert not fourth.closing
