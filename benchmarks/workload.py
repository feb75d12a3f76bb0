"""Client behaviour for the load scenarios: producers at a rate or flat out, and consumers, on the raw client.

Each loop records what it achieved (acknowledged and fetched bytes, per-request latency, errors), so a
scenario can compare tenants with one another and direct runs with proxied ones.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.rawkafka import FETCH_VERSION, PRODUCE_VERSION, Connection, KafkaError, fetch_request, produce_body
from tenantry.protocol import decode
from tenantry.protocol.headers import response_body_offset, response_header_version
from tenantry.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from tenantry.protocol.messages.fetch_response import FetchResponse
from tenantry.protocol.messages.produce_response import ProduceResponse

_I64, _I32 = struct.Struct(">q"), struct.Struct(">i")
TOPIC_ALREADY_EXISTS = 36


@dataclass
class Tally:
    """What one client achieved inside the measuring window."""

    bytes: int = 0
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by kind: "produce error 7", "connection lost", ...
    latencies: list[float] = field(default_factory=list)  # seconds, per request
    window: tuple[float, float] = (0.0, 0.0)

    def counts(self, at: float) -> bool:
        return self.window[0] <= at <= self.window[1]

    def rate(self) -> float:
        return self.bytes / max(self.window[1] - self.window[0], 1e-9)


async def create_topic(conn: Connection, name: str, partitions: int = 1) -> None:
    answer = await conn.call(CreateTopicsRequest(topics=[CreatableTopic(name=name, num_partitions=partitions,
                                                                        replication_factor=1)]), 5)
    code = answer.topics[0].error_code
    if code not in (0, TOPIC_ALREADY_EXISTS):
        raise KafkaError(f"cannot create {name}: error {code} {answer.topics[0].error_message}")


async def produce_at(conn: Connection, topic: str, batch: bytes, per_second: float, until: float, tally: Tally,
                     on_off: tuple[float, float] | None = None) -> None:
    """Send `batch` `per_second` times a second (bursts of `on_off[0]` s every `sum(on_off)` s if given)."""
    body = produce_body(topic, 0, batch)
    interval = 1 / per_second
    next_at = time.monotonic()
    while (now := time.monotonic()) < until:
        if on_off is not None and (now % sum(on_off)) >= on_off[0]:
            await asyncio.sleep(sum(on_off) - now % sum(on_off))
            next_at = time.monotonic()
            continue
        await asyncio.sleep(max(0.0, next_at - now))
        next_at += interval
        asyncio.get_running_loop().create_task(_one_produce(conn, body, len(batch), tally))


async def produce_flat_out(conn: Connection, topic: str, batch: bytes, until: float, tally: Tally,
                           in_flight: int = 5) -> None:
    body = produce_body(topic, 0, batch)

    async def lane() -> None:
        while time.monotonic() < until:
            await _one_produce(conn, body, len(batch), tally)
    await asyncio.gather(*(lane() for _ in range(in_flight)))


async def _one_produce(conn: Connection, body: list[bytes], size: int, tally: Tally) -> None:
    started = time.monotonic()
    try:
        frame = await conn.send_raw(0, PRODUCE_VERSION, body)
    except KafkaError as exc:
        tally.errors[str(exc).split(":")[0]] += 1
        return
    done = time.monotonic()
    response = decode(ProduceResponse, frame[response_body_offset(frame, response_header_version(0, PRODUCE_VERSION)):],
                      PRODUCE_VERSION)
    if code := response.responses[0].partition_responses[0].error_code:
        tally.errors[f"produce error {code}"] += 1
    elif tally.counts(done):
        tally.bytes += size
        tally.requests += 1
        tally.latencies.append(done - started)


async def consume(conn: Connection, topic: str, until: float, tally: Tally, offset: int = 0) -> None:
    """Fetch partition 0 from `offset` until `until`, counting record bytes."""
    header = response_header_version(1, FETCH_VERSION)
    while time.monotonic() < until:
        try:
            frame = await conn.call_raw(fetch_request(topic, 0, offset), FETCH_VERSION)
        except KafkaError as exc:
            tally.errors[str(exc).split(":")[0]] += 1
            return
        response = decode(FetchResponse, frame[response_body_offset(frame, header):], FETCH_VERSION)
        if response.throttle_time_ms:
            await asyncio.sleep(response.throttle_time_ms / 1000)
        for topic_data in response.responses:
            for partition in topic_data.partitions:
                if partition.error_code:
                    tally.errors[f"fetch error {partition.error_code}"] += 1
                    continue
                records = partition.records or b""
                offset, used = next_offset(memoryview(records), offset)
                if tally.counts(time.monotonic()):
                    tally.bytes += used
                    tally.requests += 1


def next_offset(records: memoryview, current: int) -> tuple[int, int]:
    """The offset after the last complete batch, and the bytes of the complete batches."""
    pos = 0
    while pos + 61 <= len(records):
        size = 12 + _I32.unpack_from(records, pos + 8)[0]
        if pos + size > len(records):
            break
        current = _I64.unpack_from(records, pos)[0] + _I32.unpack_from(records, pos + 23)[0] + 1
        pos += size
    return current, pos
