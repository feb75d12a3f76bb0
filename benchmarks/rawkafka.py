"""A lean asyncio Kafka client for load generation: thousands of connections from one process.

Built on the project's own codec. It logs in with SCRAM (about 2 ms of PBKDF2 per login here) or
PLAIN, produces a pre-built record batch again and again (no per-message encoding, no CRC per send),
and fetches. Real clients (Kafka's own tools, librdkafka) run the ceiling and latency scenarios; this one
exists because they cannot open 10,000 connections or simulate 1,000 tenants on two cores.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from functools import cache
from typing import Any

from kafka.record.default_records import DefaultRecordBatchBuilder
from scramp import ScramClient

from tenantry.protocol import decode, encode
from tenantry.protocol.headers import encode_request_header, response_body_offset, response_header_version
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.protocol.primitives import encode_uvarint
from tenantry.protocol.schema import Message

SIZE = struct.Struct(">i")
PRODUCE_VERSION, FETCH_VERSION, METADATA_VERSION = 9, 12, 12


class KafkaError(Exception):
    pass


@cache
def record_batch(records: int, value_size: int) -> bytes:
    """One v2 batch of `records` records of `value_size` bytes (built once, sent many times)."""
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 30)
    value = b"x" * value_size
    for i in range(records):
        builder.append(i, timestamp=None, key=None, value=value, headers=[])
    return bytes(builder.build())


class Connection:
    """One connection: requests pipelined, responses matched in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client_id: str) -> None:
        self.reader, self.writer, self.client_id = reader, writer, client_id
        self._corr = 0
        self._waiting: deque[tuple[int, int, asyncio.Future[memoryview]]] = deque()
        self._reading = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, address: str, user: str | None = None, password: str | None = None,
                   mechanism: str = "SCRAM-SHA-256", client_id: str = "bench") -> Connection:
        host, port = address.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 22)
        conn = cls(reader, writer, client_id)
        if user is not None and password is not None:
            try:
                await conn.login(user, password, mechanism)
            except BaseException:
                conn.close()
                raise
        return conn

    async def login(self, user: str, password: str, mechanism: str) -> None:
        handshake = await self.call(SaslHandshakeRequest(mechanism=mechanism), 1)
        if handshake.error_code:
            raise KafkaError(f"SASL handshake refused: {handshake.error_code}")
        if mechanism == "PLAIN":
            tokens = [b"\0" + user.encode() + b"\0" + password.encode()]
            answer = await self.call(SaslAuthenticateRequest(auth_bytes=tokens[0]), 2)
            if answer.error_code:
                raise KafkaError(f"login refused: {answer.error_message}")
            return
        client = ScramClient([mechanism], user, password)
        first = await self.call(SaslAuthenticateRequest(auth_bytes=client.get_client_first().encode()), 2)
        if first.error_code:
            raise KafkaError(f"login refused: {first.error_message}")
        client.set_server_first(bytes(first.auth_bytes).decode())
        final = await self.call(SaslAuthenticateRequest(auth_bytes=client.get_client_final().encode()), 2)
        if final.error_code:
            raise KafkaError(f"login refused: {final.error_message}")

    def _send(self, api_key: int, version: int, body: bytes | list[bytes]) -> asyncio.Future[memoryview]:
        self._corr += 1
        head = encode_request_header(api_key, version, self._corr, self.client_id)
        parts = body if isinstance(body, list) else [body]
        size = len(head) + sum(len(p) for p in parts)
        self.writer.writelines([SIZE.pack(size), head, *parts])
        future: asyncio.Future[memoryview] = asyncio.get_running_loop().create_future()
        self._waiting.append((api_key, version, future))
        return future

    async def call(self, request: Message, version: int) -> Any:
        assert request.API_KEY is not None
        frame = await self._send(request.API_KEY, version, encode(request, version))
        offset = response_body_offset(frame, response_header_version(request.API_KEY, version))
        return decode(RESPONSES[request.API_KEY], frame[offset:], version)

    async def call_raw(self, request: Message, version: int) -> memoryview:
        """Send a request; the response frame, undecoded (from its correlation id on)."""
        assert request.API_KEY is not None
        return await self._send(request.API_KEY, version, encode(request, version))

    def send_raw(self, api_key: int, version: int, body: list[bytes]) -> asyncio.Future[memoryview]:
        """Send an encoded body; the future gets the response frame (from its correlation id on)."""
        return self._send(api_key, version, body)

    async def _read(self) -> None:
        try:
            while True:
                size = SIZE.unpack(await self.reader.readexactly(4))[0]
                frame = memoryview(await self.reader.readexactly(size))
                _, _, future = self._waiting.popleft()
                if not future.done():
                    future.set_result(frame)
        except (asyncio.IncompleteReadError, ConnectionError, IndexError) as exc:
            for _, _, future in self._waiting:
                if not future.done():
                    future.set_exception(KafkaError(f"connection lost: {exc!r}"))
            self._waiting.clear()

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def close(self) -> None:
        self._reading.cancel()
        self.writer.close()


def produce_body(topic: str, partition: int, batch: bytes, acks: int = -1) -> list[bytes]:
    """A Produce request body around `batch`, split so the batch itself is never copied again."""
    marker = b"\x00MARK\x00"
    encoded = encode(ProduceRequest(acks=acks, timeout_ms=30000, topic_data=[TopicProduceData(
        name=topic, partition_data=[PartitionProduceData(index=partition, records=marker)])]), PRODUCE_VERSION)
    # The records field is a compact bytes field: its length varint precedes it; re-encode it for `batch`.
    before, after = encoded.split(marker)
    length_varint_len = 1  # len(marker) + 1 == 9 fits one varint byte
    return [before[:-length_varint_len] + encode_uvarint(len(batch) + 1), batch, after]


def fetch_request(topic: str, partition: int, offset: int, max_bytes: int = 1 << 20,
                  max_wait_ms: int = 500) -> FetchRequest:
    return FetchRequest(max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=max_bytes, isolation_level=0,
                        topics=[FetchTopic(topic=topic, partitions=[FetchPartition(
                            partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes)])])


def metadata_request(*topics: str) -> MetadataRequest:
    return MetadataRequest(topics=[MetadataRequestTopic(name=t) for t in topics], allow_auto_topic_creation=False)
