"""Readers, skippers and writers of Kafka's primitive wire types.

Readers take ``(buf, pos)`` and return ``(value, new_pos)``; they never copy a ``records`` field (they
return a memoryview of it). Writers append to a :class:`Writer`, which keeps large opaque payloads as
separate buffers so re-encoding a message never copies its record batches either.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import Any

from tenantry.protocol.errors import DecodeError

Reader = Callable[[memoryview, int], tuple[Any, int]]
Skipper = Callable[[memoryview, int], int]

_FIXED: dict[str, struct.Struct] = {
    "int8": struct.Struct(">b"),
    "int16": struct.Struct(">h"),
    "uint16": struct.Struct(">H"),
    "int32": struct.Struct(">i"),
    "int64": struct.Struct(">q"),
    "float64": struct.Struct(">d"),
    "bool": struct.Struct(">?"),
}
FIXED_SIZES: dict[str, int] = {name: s.size for name, s in _FIXED.items()} | {"uuid": 16}
INT32 = _FIXED["int32"]
INT16 = _FIXED["int16"]

#: Opaque payloads at least this large are kept as their own buffer rather than copied by the Writer.
ZERO_COPY_THRESHOLD = 1024


def read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    byte = buf[pos]
    if byte < 0x80:  # nearly every length, count and tag fits in one byte: no loop for those
        return byte, pos + 1
    result = 0
    shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise DecodeError("unsigned varint longer than 5 bytes")


def encode_uvarint(value: int) -> bytes:
    if value < 0:
        raise ValueError("unsigned varint cannot be negative")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fixed_reader(fmt: struct.Struct) -> Reader:
    size = fmt.size
    unpack = fmt.unpack_from

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        return unpack(buf, pos)[0], pos + size

    return read


def _check(buf: memoryview, end: int) -> None:
    if end > len(buf):
        raise DecodeError(f"length runs past the end of the message ({end} > {len(buf)})")


def _length(buf: memoryview, pos: int, compact: bool, wide: bool) -> tuple[int, int]:
    """Length prefix of a string/bytes/array; -1 means null."""
    if compact:
        byte = buf[pos]
        if byte < 0x80:  # the common one-byte length, without a call
            return byte - 1, pos + 1
        n, pos = read_uvarint(buf, pos)
        return n - 1, pos
    if wide:
        return INT32.unpack_from(buf, pos)[0], pos + 4
    return INT16.unpack_from(buf, pos)[0], pos + 2


def reader_for(type_: str, compact: bool) -> Reader:
    """The reader of one primitive type, in the compact (flexible) layout or the classic one."""
    if type_ in _FIXED:
        return _fixed_reader(_FIXED[type_])
    if type_ == "uuid":
        def read_uuid(buf: memoryview, pos: int) -> tuple[Any, int]:
            _check(buf, pos + 16)
            return uuid.UUID(bytes=bytes(buf[pos:pos + 16])), pos + 16
        return read_uuid
    if type_ == "string":
        def read_string(buf: memoryview, pos: int) -> tuple[Any, int]:
            n, pos = _length(buf, pos, compact, wide=False)
            if n < 0:
                return None, pos
            _check(buf, pos + n)
            try:
                return str(buf[pos:pos + n], "utf-8"), pos + n
            except UnicodeDecodeError as exc:
                raise DecodeError(f"string is not UTF-8: {exc}") from None
        return read_string
    if type_ in ("bytes", "records"):
        keep_view = type_ == "records"

        def read_bytes(buf: memoryview, pos: int) -> tuple[Any, int]:
            n, pos = _length(buf, pos, compact, wide=True)
            if n < 0:
                return None, pos
            _check(buf, pos + n)
            view = buf[pos:pos + n]
            return (view if keep_view else bytes(view)), pos + n
        return read_bytes
    raise ValueError(f"unknown primitive type {type_!r}")


def skipper_for(type_: str, compact: bool) -> Skipper:
    """Advance past one primitive value without building it."""
    if type_ in FIXED_SIZES:
        size = FIXED_SIZES[type_]

        def skip_fixed(buf: memoryview, pos: int) -> int:
            _check(buf, pos + size)
            return pos + size
        return skip_fixed
    wide = type_ != "string"

    def skip_sized(buf: memoryview, pos: int) -> int:
        n, pos = _length(buf, pos, compact, wide)
        end = pos + max(n, 0)
        _check(buf, end)
        return end
    return skip_sized


def read_array_length(buf: memoryview, pos: int, compact: bool) -> tuple[int, int]:
    return _length(buf, pos, compact, wide=True)


class Writer:
    """Collects an encoded message as a list of buffers; big opaque payloads are referenced, not copied."""

    __slots__ = ("buf", "parts")

    def __init__(self) -> None:
        self.parts: list[bytes | bytearray | memoryview] = []
        self.buf = bytearray()

    def fixed(self, type_: str, value: Any) -> None:
        self.buf += _FIXED[type_].pack(value)

    def uvarint(self, value: int) -> None:
        self.buf += encode_uvarint(value)

    def length(self, n: int, compact: bool, wide: bool) -> None:
        if compact:
            self.uvarint(n + 1)
        elif wide:
            self.buf += INT32.pack(n)
        else:
            self.buf += INT16.pack(n)

    def uuid(self, value: uuid.UUID) -> None:
        self.buf += value.bytes

    def string(self, value: str | None, compact: bool) -> None:
        if value is None:
            self.length(-1, compact, wide=False)
            return
        data = value.encode("utf-8")
        self.length(len(data), compact, wide=False)
        self.buf += data

    def blob(self, value: bytes | bytearray | memoryview | None, compact: bool) -> None:
        if value is None:
            self.length(-1, compact, wide=True)
            return
        self.length(len(value), compact, wide=True)
        self.raw(value)

    def raw(self, value: bytes | bytearray | memoryview) -> None:
        if len(value) >= ZERO_COPY_THRESHOLD:
            self.parts.append(self.buf)
            self.parts.append(value)
            self.buf = bytearray()
        else:
            self.buf += value

    def extend(self, other: Writer) -> None:
        for part in other.chunks():
            self.raw(part)

    def chunks(self) -> list[bytes | bytearray | memoryview]:
        return [p for p in (*self.parts, self.buf) if len(p)]

    def size(self) -> int:
        return sum(map(len, self.parts)) + len(self.buf)

    def getvalue(self) -> bytes:
        return b"".join(self.chunks())
