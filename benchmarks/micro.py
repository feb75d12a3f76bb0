"""Hot-path microbenchmarks: the framer, the scanner, the splice, and one request through the proxy.

    python -m benchmarks.micro        (or: make microbench)

Each figure is the best of several timed runs, in microseconds of CPU per operation, measured
in-process (no sockets, no broker): a change that adds a microsecond per request shows here long
before a full benchmark can see it through the noise of a shared machine. On a machine whose
neighbours steal CPU, even the best of seven moves by a third between runs; the last line, Python
function calls per tenant round trip (counted by cProfile), does not move at all.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import uvloop

from benchmarks.inprocess import FakeServer, acme, connect, frame, send
from benchmarks.rawkafka import record_batch
from tenantry.protocol import FrameReader, scan
from tenantry.protocol.codec import encode
from tenantry.protocol.headers import parse_request_header, response_body_offset
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from tenantry.protocol.messages.fetch_response import FetchableTopicResponse, FetchResponse, PartitionData
from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tenantry.protocol.messages.produce_response import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.proxy.record_encryption import RecordCipher
from tenantry.proxy.rewrite.rewriter import TENANT_REQUEST, Addresses, RequestContext, Rewriter
from tenantry.proxy.rewrite.topic_ids import TopicIds
from tenantry.tenants.envelope import Envelopes
from tenantry.tenants.keystore import LocalKeyStore
from tenantry.tenants.naming import Namespace

VERSION = 9
FETCH_VERSION = 12
REPEATS = 7


def produce(acks: int = 1, records: bytes | None = None) -> ProduceRequest:
    return ProduceRequest(acks=acks, timeout_ms=30_000, topic_data=[TopicProduceData(
        name="orders", partition_data=[PartitionProduceData(index=0, records=records or record_batch(16, 100))])])


def produce_response(topic: str) -> ProduceResponse:
    return ProduceResponse(responses=[TopicProduceResponse(name=topic, partition_responses=[
        PartitionProduceResponse(index=0, base_offset=42)])])


def per_op(fn: Callable[[], None], n: int) -> float:
    """CPU microseconds per call of `fn`: the best of REPEATS runs of n calls."""
    runs = []
    for _ in range(REPEATS):
        started = time.process_time()
        for _ in range(n):
            fn()
        runs.append((time.process_time() - started) / n * 1e6)
    return min(runs)


def framer() -> float:
    one = frame(produce(), VERSION, 1)
    stream = one * 1000
    reads = [stream[i:i + 65536] for i in range(0, len(stream), 65536)]

    def feed() -> None:
        reader, frames = FrameReader(1 << 20), 0
        for chunk in reads:
            while chunk:
                buf = reader.get_buffer(len(chunk))
                n = min(len(buf), len(chunk))
                buf[:n] = chunk[:n]
                frames += len(reader.buffer_updated(n))
                chunk = chunk[n:]
        assert frames == 1000
    return per_op(feed, 20) / 1000


def scanner() -> float:
    data = memoryview(frame(produce(), VERSION, 1))[4:]
    header = parse_request_header(data)
    return per_op(lambda: scan(ProduceRequest, VERSION, data, header.body_offset, TENANT_REQUEST), 20_000)


def splice_request() -> float:
    data = memoryview(frame(produce(), VERSION, 1))[4:]
    header = parse_request_header(data)
    rewriter = Rewriter(Namespace("acme."), TopicIds(), "acme")
    return per_op(lambda: rewriter.request(data, header), 20_000)


def splice_response() -> float:
    data = memoryview(b"\x00\x00\x00\x07\x00" + encode(produce_response("acme.orders"), VERSION))
    offset = response_body_offset(data, 1)
    rewriter = Rewriter(Namespace("acme."), TopicIds(), "acme")
    addresses = Addresses("127.0.0.1", lambda node: 19093 + node)
    return per_op(lambda: rewriter.response(0, VERSION, data, offset, RequestContext(), addresses), 20_000)


#: alice of acme checked against ACLs that let her write and read "orders" (and consume with any group).
ACLS = [{"resource_type": t, "name": n, "principal": "User:alice", "operation": op}
        for t, n, op in (("TOPIC", "orders", "WRITE"), ("TOPIC", "orders", "READ"), ("GROUP", "*", "READ"))]


def fetch() -> FetchRequest:
    """A librdkafka-style Fetch: sessionless, one partition."""
    return FetchRequest(max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, session_epoch=-1, topics=[FetchTopic(
        topic="orders", partitions=[FetchPartition(partition=0, fetch_offset=42, partition_max_bytes=1 << 20)])])


def fetch_response(topic: str, records: bytes | None = None) -> FetchResponse:
    return FetchResponse(responses=[FetchableTopicResponse(topic=topic, partitions=[
        PartitionData(partition_index=0, high_watermark=58, records=records or record_batch(16, 100))])])


#: Encrypted rows: one batch of 16 records of 1 KiB, as Kafka's ProducerPerformance sends them.
ENCRYPTED_BATCH = record_batch(16, 1024)


async def _round_trips(tenants: bool, n: int, acls: bool = False, fetching: bool = False,
                       encrypted: bool = False) -> float:
    registry = acme(authorization="acls", acls=ACLS) if acls else None
    if encrypted:
        registry = acme(encryption={"topics": ["orders"]})
    server = FakeServer(tenants, registry)
    sealed = None
    if encrypted:
        store = Path(tempfile.mkdtemp(prefix="tenantry-micro-")) / "keys.json"
        server.envelopes = Envelopes(LocalKeyStore(store))
        sealed = RecordCipher(server.envelopes, "acme").seal("orders", memoryview(ENCRYPTED_BATCH))
    server.broker_open.set()
    conn, transport = connect(server)
    if tenants:
        send(conn, frame(SaslHandshakeRequest(mechanism="PLAIN"), 1, 1)
             + frame(SaslAuthenticateRequest(auth_bytes=b"\0alice\0secret"), 2, 2))
    request = (frame(fetch(), FETCH_VERSION, 3) if fetching
               else frame(produce(records=ENCRYPTED_BATCH if encrypted else None), VERSION, 3))
    topic = "acme.orders" if tenants else "orders"
    response = fetch_response(topic, sealed) if fetching else produce_response(topic)
    # correlation id, tagged fields
    answer = memoryview(b"\x00\x00\x00\x63\x00" + encode(response, FETCH_VERSION if fetching else VERSION))
    for _ in range(200):  # logged in, broker connection open
        await asyncio.sleep(0.005)
        if server.upstreams or not tenants:
            break
    send(conn, request)  # the first request opens the broker connection
    await asyncio.sleep(0.01)
    upstream = server.upstreams[0]
    upstream.answer(upstream.forwarded.pop(), response)
    runs = []
    for _ in range(REPEATS):
        started = time.process_time()
        for _ in range(n):
            send(conn, request)
            conn.on_upstream_response(upstream.forwarded.pop(), answer)
            transport.written.clear()
        runs.append((time.process_time() - started) / n * 1e6)
    conn.close("done")
    return min(runs)


def round_trip(tenants: bool, acls: bool = False, fetching: bool = False, encrypted: bool = False) -> float:
    return uvloop.run(_round_trips(tenants, 1000 if encrypted else 5000, acls, fetching, encrypted))


def calls_per_round_trip() -> float:
    """Python function calls per tenant round trip (the login and set-up are spread over 2,000 trips)."""
    global REPEATS
    profile, repeats, REPEATS = cProfile.Profile(), REPEATS, 1
    try:
        profile.enable()
        uvloop.run(_round_trips(True, 2000))
        profile.disable()
    finally:
        REPEATS = repeats
    return float(pstats.Stats(profile).total_calls) / 2000  # type: ignore[attr-defined]


def main() -> int:
    rows = [
        ("framer: one 1.7 kB Produce frame out of 64 kB reads", framer()),
        ("scanner: find the names in a Produce request", scanner()),
        ("splice: rewrite a Produce request for a tenant", splice_request()),
        ("splice: rewrite a Produce response for a tenant", splice_response()),
        ("round trip, transparent: Produce in, forwarded, response out", round_trip(False)),
        ("round trip, tenant: Produce in, through every stage, response out", round_trip(True)),
        ("round trip, tenant user checked against ACLs: Produce", round_trip(True, acls=True)),
        ("round trip, tenant: Fetch (1 partition, 16 records)", round_trip(True, fetching=True)),
        ("round trip, tenant user checked against ACLs: Fetch", round_trip(True, acls=True, fetching=True)),
        ("round trip, tenant, encrypted topic: Produce (16 records of 1 KiB)", round_trip(True, encrypted=True)),
        ("round trip, tenant, encrypted topic: Fetch (16 records of 1 KiB)",
         round_trip(True, fetching=True, encrypted=True)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'operation':{width}}  µs CPU per op (best of {REPEATS})")
    for name, micros in rows:
        print(f"{name:{width}}  {micros:8.2f}")
    print(f"{'Python function calls per tenant round trip':{width}}  {calls_per_round_trip():8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
