"""Request and response headers: which version each API uses, and fast parsing and building of them.

Header v0/v1 (classic) and v2/v1 (flexible, with tagged fields) for requests/responses respectively.
ApiVersions responses always use response header v0, so old clients can read a newer broker's answer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tenantry.protocol.errors import DecodeError, UnknownApi
from tenantry.protocol.messages import REQUESTS, RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.native import NATIVE
from tenantry.protocol.primitives import INT16, INT32, encode_uvarint, read_uvarint
from tenantry.protocol.schema import Message

_HEADER_PREFIX = 8  # api_key int16, api_version int16, correlation_id int32


def _first_flexible(cls: type[Message]) -> int | None:
    versions = cls.FLEXIBLE_VERSIONS
    if versions.hi is not None and versions.lo <= versions.hi:
        raise AssertionError(f"{cls.__name__}: flexible versions end at {versions.hi}; Kafka's never do")
    return None if versions.hi is not None else versions.lo


#: The first flexible version of each API (None: none is). Every request passes here, on every header.
_FIRST_FLEXIBLE: dict[int, int | None] = {key: _first_flexible(cls) for key, cls in REQUESTS.items()}


def is_flexible(api_key: int, api_version: int) -> bool:
    try:
        first = _FIRST_FLEXIBLE[api_key]
    except KeyError:
        raise UnknownApi(f"unknown API key {api_key}") from None
    return first is not None and api_version >= first


def response_header_version(api_key: int, api_version: int) -> int:
    if api_key == ApiKey.API_VERSIONS:
        return 0
    return 1 if is_flexible(api_key, api_version) else 0


def is_known(api_key: int, api_version: int) -> bool:
    request = REQUESTS.get(api_key)
    return request is not None and api_version in request.VALID_VERSIONS and api_key in RESPONSES


@dataclass(slots=True)
class RequestHeader:
    """The fields of a request header the proxy routes by, and where the body starts."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


def peek_request_header(frame: memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id): readable for any request, known or not."""
    if NATIVE is not None:
        return NATIVE.peek_request_header(frame)  # type: ignore[no-any-return]
    return peek_request_header_in_python(frame)


def peek_request_header_in_python(frame: memoryview) -> tuple[int, int, int]:
    if len(frame) < _HEADER_PREFIX:
        raise DecodeError(f"request of {len(frame)} bytes is shorter than a request header")
    return INT16.unpack_from(frame, 0)[0], INT16.unpack_from(frame, 2)[0], INT32.unpack_from(frame, 4)[0]


def parse_request_header(frame: memoryview) -> RequestHeader:
    """Parse a request header; the API key and version must be known (see :func:`is_known`)."""
    if NATIVE is not None:
        parsed = NATIVE.parse_request_header(frame, _FIRST_FLEXIBLE)
        if parsed is not NotImplemented:
            return RequestHeader(*parsed)
    return parse_request_header_in_python(frame)


def parse_request_header_in_python(frame: memoryview) -> RequestHeader:
    """:func:`parse_request_header` in Python: the reference, and the whole of it without the C extension."""
    api_key, api_version, correlation_id = peek_request_header_in_python(frame)
    try:
        n = INT16.unpack_from(frame, _HEADER_PREFIX)[0]
        pos = _HEADER_PREFIX + 2
        client_id = None
        if n >= 0:
            if pos + n > len(frame):
                raise DecodeError("client id runs past the end of the request")
            client_id = str(frame[pos:pos + n], "utf-8", errors="replace")
            pos += n
        if is_flexible(api_key, api_version):
            pos = skip_tagged_fields(frame, pos)
    except (IndexError, ValueError, struct.error) as exc:
        raise DecodeError(f"malformed request header: {exc}") from None
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos)


def skip_tagged_fields(buf: memoryview, pos: int) -> int:
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
    if pos > len(buf):
        raise DecodeError("tagged fields run past the end of the header")
    return pos


def response_body_start(frame: memoryview, api_key: int, api_version: int) -> int:
    """Where the body of a response to `api_key` at `api_version` starts (see :func:`response_body_offset`)."""
    if NATIVE is not None:
        start = NATIVE.response_body_start(frame, api_key, api_version, _FIRST_FLEXIBLE)
        if start is not NotImplemented:
            return start  # type: ignore[no-any-return]
    return response_body_offset(frame, response_header_version(api_key, api_version))


def response_body_offset(frame: memoryview, header_version: int) -> int:
    """Where the body of a response frame starts (after the correlation id and any tagged fields)."""
    return 4 if header_version == 0 else skip_tagged_fields(frame, 4)


def encode_request_header(api_key: int, api_version: int, correlation_id: int, client_id: str | None) -> bytes:
    head = INT16.pack(api_key) + INT16.pack(api_version) + INT32.pack(correlation_id)
    if client_id is None:
        head += INT16.pack(-1)
    else:
        data = client_id.encode()
        head += INT16.pack(len(data)) + data
    if is_flexible(api_key, api_version):
        head += encode_uvarint(0)
    return head


def encode_response_header(correlation_id: int, header_version: int) -> bytes:
    return INT32.pack(correlation_id) + (b"\x00" if header_version >= 1 else b"")
