"""Telling a client it is throttled, the way a Kafka broker does (KIP-13, KIP-219).

The response's ``throttle_time_ms`` becomes the larger of the broker's and the proxy's. For response
versions where clients back off by themselves, the response goes out at once and the proxy stops
reading that connection for the delay; for older versions the response itself is held back.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from tenantry.protocol import decode, encode
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.primitives import FIXED_SIZES, INT32
from tenantry.protocol.scanner import Chunk

#: API key -> first response version whose clients throttle themselves (shouldClientThrottle in
#: kafka-clients 4.3.1's response classes). APIs not listed never do: their responses are delayed.
CLIENT_THROTTLES_FROM = {
    0: 6, 1: 8, 2: 3, 3: 6, 8: 4, 9: 4, 10: 2, 11: 3, 12: 2, 13: 2, 14: 2, 15: 2, 16: 2, 18: 2, 19: 3,
    20: 2, 21: 1, 22: 1, 24: 1, 25: 1, 26: 1, 28: 1, 32: 2, 33: 1, 37: 1, 42: 1, 44: 0, 47: 0, 75: 0,
}


def client_throttles(api_key: int, version: int) -> bool:
    first = CLIENT_THROTTLES_FROM.get(api_key)
    return first is not None and version >= first


@cache
def throttle_offset(api_key: int, version: int) -> int | None:
    """Where throttle_time_ms sits after the response header, if every field before it has a fixed size.

    None when the response has no such field in this version, or when it follows a variable-size field
    (Produce, whose throttle comes after its partition list).
    """
    offset = 0
    for f in RESPONSES[api_key].FIELDS:
        if not f.in_version(version) or f.is_tagged(version):
            continue
        if f.name == "throttle_time_ms":
            return offset
        if f.array or f.struct is not None or f.type not in FIXED_SIZES:
            return None
        offset += FIXED_SIZES[f.type]
    return None


def has_throttle_field(api_key: int, version: int) -> bool:
    return any(f.name == "throttle_time_ms" and f.in_version(version) for f in RESPONSES[api_key].FIELDS)


def read_throttle(frame: memoryview, body_offset: int, api_key: int, version: int) -> int:
    """The broker's throttle_time_ms, for responses where it sits at a fixed offset (else 0)."""
    offset = throttle_offset(api_key, version)
    if offset is None or body_offset + offset + 4 > len(frame):
        return 0
    value: int = INT32.unpack_from(frame, body_offset + offset)[0]
    return value


def overwrite_int32(chunks: list[Chunk], offset: int, value: int) -> list[Chunk]:
    """`chunks` with the 4 bytes at `offset` (counted over all of them) replaced, without copying any."""
    out: list[Chunk] = []
    packed, pos, i = INT32.pack(value), 0, 0
    while i < len(chunks):
        chunk = memoryview(chunks[i]) if not isinstance(chunks[i], memoryview) else chunks[i]
        end = pos + len(chunk)
        if offset < end:
            start = offset - pos
            if start + 4 > len(chunk):
                raise ValueError("throttle_time_ms straddles two chunks")
            out += [chunk[:start], packed, chunk[start + 4:], *chunks[i + 1:]]
            return out
        out.append(chunks[i])
        pos, i = end, i + 1
    raise ValueError(f"offset {offset} is past the end of the response")


def rewrite_throttle_field(frame: memoryview, body_offset: int, api_key: int, version: int, ms: int) -> memoryview:
    """A copy of a small response with throttle_time_ms raised to `ms` (for throttles at no fixed offset).

    Only Produce responses take this path: they hold partition results, never record batches.
    """
    message: Any = decode(RESPONSES[api_key], frame[body_offset:], version)
    message.throttle_time_ms = max(message.throttle_time_ms, ms)
    return memoryview(bytes(frame[:body_offset]) + encode(message, version))
