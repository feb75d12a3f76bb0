"""Whole frames (size prefix, header, body) for messages the proxy writes itself, and single-field peeks."""

from __future__ import annotations

from tenantry.protocol.codec import encode_into
from tenantry.protocol.headers import (
    encode_request_header,
    encode_response_header,
    is_flexible,
    response_header_version,
)
from tenantry.protocol.primitives import INT16, INT32, Writer, read_uvarint
from tenantry.protocol.schema import Message


def request_frame(request: Message, version: int, correlation_id: int, client_id: str | None) -> bytes:
    assert request.API_KEY is not None
    w = Writer()
    w.buf += encode_request_header(request.API_KEY, version, correlation_id, client_id)
    encode_into(w, request, version)
    body = w.getvalue()
    return INT32.pack(len(body)) + body


def response_frame(response: Message, version: int, correlation_id: int) -> bytes:
    assert response.API_KEY is not None
    w = Writer()
    w.buf += encode_response_header(correlation_id, response_header_version(response.API_KEY, version))
    encode_into(w, response, version)
    body = w.getvalue()
    return INT32.pack(len(body)) + body


def produce_acks(frame: memoryview, body_offset: int, version: int) -> int:
    """The acks field of a Produce request (it follows the transactional id from v3 on)."""
    pos = body_offset
    if version >= 3:
        if is_flexible(0, version):
            n, pos = read_uvarint(frame, pos)
            pos += max(n - 1, 0)
        else:
            n = INT16.unpack_from(frame, pos)[0]
            pos += 2 + max(n, 0)
    return int(INT16.unpack_from(frame, pos)[0])
