"""Where throttle_time_ms sits in each response, and patching it without copying the rest."""

from tenantry.protocol import decode, encode
from tenantry.protocol.messages.fetch_response import FetchResponse
from tenantry.protocol.messages.produce_response import ProduceResponse
from tenantry.protocol.primitives import INT32
from tenantry.proxy.throttle_field import (
    client_throttles,
    overwrite_int32,
    rewrite_throttle_field,
    throttle_offset,
)


def test_kip219_versions_follow_kafka_clients():
    assert not client_throttles(0, 5) and client_throttles(0, 6)
    assert not client_throttles(1, 7) and client_throttles(1, 8)
    assert not client_throttles(23, 4)  # OffsetForLeaderEpoch: clients never throttle themselves


def test_throttle_offsets():
    assert throttle_offset(1, 12) == 0  # Fetch: first field
    assert throttle_offset(47, 0) == 2  # OffsetDelete: after its int16 error code
    assert throttle_offset(0, 9) is None  # Produce: after the partition list
    assert throttle_offset(17, 1) is None  # SaslHandshake has none


def test_overwrite_splits_one_chunk_and_keeps_the_others_as_they_are():
    tail = memoryview(b"RECORDS" * 100)
    chunks = [b"\x00\x00", memoryview(b"\x00\x00\x00\x05rest"), tail]
    out = overwrite_int32(chunks, 2, 1234)
    assert b"".join(bytes(c) for c in out) == b"\x00\x00" + INT32.pack(1234) + b"rest" + bytes(tail)
    assert out[-1] is tail


def test_fetch_throttle_is_patched_in_place_of_the_brokers():
    body = encode(FetchResponse(throttle_time_ms=7), 12)
    out = overwrite_int32([memoryview(body)], 0, 500)
    assert decode(FetchResponse, memoryview(b"".join(bytes(c) for c in out)), 12).throttle_time_ms == 500


def test_produce_throttle_is_raised_never_lowered():
    header = b"\x00\x00\x00\x01\x00"  # correlation id, empty tagged fields
    frame = memoryview(header + encode(ProduceResponse(throttle_time_ms=900), 9))
    raised = b"".join(rewrite_throttle_field([frame], len(header), 0, 9, 300))
    assert decode(ProduceResponse, raised[len(header):], 9).throttle_time_ms == 900
    raised = b"".join(rewrite_throttle_field([frame], len(header), 0, 9, 3000))
    assert decode(ProduceResponse, raised[len(header):], 9).throttle_time_ms == 3000
