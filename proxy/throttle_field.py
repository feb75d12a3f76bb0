"""A response's ``throttle_time_ms``: where it is, reading it and raising it without copying the response.

The response's ``throttle_time_ms`` becomes the larger of the broker's and the proxy's. For response
versions where clients back off by themselves (:func:`client_throttles`, Kafka's own rule, generated
from kafka-clients), the response goes out at once and the proxy stops reading that connection for the
delay; for older versions the response itself is held back (see :mod:`tenantry.proxy.stages.quotas`).
"""

from __future__ import annotations

from typing import Any

from tenantry.protocol import decode, encode
from tenantry.protocol.envelope import fixed_field_offset
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.api_keys import CLIENT_THROTTLES_FROM
from tenantry.protocol.primitives import INT32
from tenantry.protocol.scanner import Chunk


def client_throttles(api_key: int, version: int) -> bool:
    first = CLIENT_THROTTLES_FROM.get(api_key)
    return first is not None and version >= first


def throttle_offset(api_key: int, version: int) -> int | None:
    """Where throttle_time_ms sits after the response header, if every field before it has a fixed size.

    None when the response has no such field in this version, or when it follows a variable-size field
    (Produce, whose throttle comes after its partition list).
    """
    return fixed_field_offset(RESPONSES[api_key], version, "throttle_time_ms")


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


def rewrite_throttle_field(chunks: list[Chunk], body_offset: int, api_key: int, version: int, ms: int) -> list[Chunk]:
    """A small response re-encoded with throttle_time_ms raised to `ms` (for throttles at no fixed offset).

    Only Produce responses take this path: they hold partition results, never record batches.
    """
    data = b"".join(chunks)
    message: Any = decode(RESPONSES[api_key], memoryview(data)[body_offset:], version)
    message.throttle_time_ms = max(message.throttle_time_ms, ms)
    return [data[:body_offset], encode(message, version)]
