"""Whole frames (size prefix, header, body) for messages the proxy writes itself, and single-field peeks."""

from __future__ import annotations

from tenantry.protocol.codec import encode_into
from tenantry.protocol.headers import (
    encode_request_header,
    encode_response_header,
    is_flexible,
    response_header_version,
)
from tenantry.protocol.primitives import FIXED_SIZES, INT16, INT32, Writer, read_uvarint
from tenantry.protocol.schema import Message, Struct


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


_OFFSETS: dict[tuple[object, int, str], int | None] = {}


def fixed_field_offset(cls: type[Struct], version: int, name: str) -> int | None:
    """Where field `name` sits after the start of the body, if every field before it has a fixed size.

    None when the field is absent in this version, tagged, or follows a variable-size field.
    """
    key = (cls, version, name)
    if key not in _OFFSETS:
        _OFFSETS[key] = _fixed_field_offset(cls, version, name)
    return _OFFSETS[key]


def _fixed_field_offset(cls: type[Struct], version: int, name: str) -> int | None:
    offset = 0
    for f in cls.FIELDS:
        if not f.in_version(version) or f.is_tagged(version):
            continue
        if f.name == name:
            return offset
        if f.array or f.struct is not None or f.type not in FIXED_SIZES:
            return None
        offset += FIXED_SIZES[f.type]
    return None


def peek_int32(body: memoryview | bytes, cls: type[Struct], version: int, name: str) -> int | None:
    """An int32 field at a fixed offset of a message body (no decoding), or None if it has none."""
    offset = fixed_field_offset(cls, version, name)
    if offset is None or offset + 4 > len(body):
        return None
    value: int = INT32.unpack_from(body, offset)[0]
    return value
