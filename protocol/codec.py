"""Full decode and encode of generated messages, compiled once per (struct, version) into closures.

This is the cold path: it builds typed objects and is used for messages the proxy must restructure
(ApiVersions, error responses) and in tests. Unknown tagged fields are kept on each struct and written
back in tag order, so messages from newer peers pass through unchanged. The hot path is
:mod:`tenantry.protocol.scanner`, which never builds objects.
"""

from __future__ import annotations

import struct as _struct
from collections.abc import Callable
from typing import Any, TypeVar

from tenantry.protocol.errors import DecodeError
from tenantry.protocol.primitives import (
    Reader,
    Writer,
    _check,
    read_array_length,
    read_uvarint,
    reader_for,
)
from tenantry.protocol.schema import Field, Message, Struct

S = TypeVar("S", bound=Struct)
M = TypeVar("M", bound=Message)
StructReader = Callable[[memoryview, int], tuple[Any, int]]
ValueWriter = Callable[[Writer, Any], None]

_readers: dict[tuple[type[Struct], int, bool], StructReader] = {}
_writers: dict[tuple[type[Struct], int, bool], ValueWriter] = {}


def is_compact(field: Field, version: int, flexible: bool) -> bool:
    return flexible and (field.flexible is None or version in field.flexible)


def struct_reader(cls: type[Struct], version: int, flexible: bool) -> StructReader:
    """The compiled reader of one struct at one version."""
    key = (cls, version, flexible)
    cached = _readers.get(key)
    if cached is not None:
        return cached
    regular: list[tuple[str, Reader]] = []
    tagged: dict[int, tuple[str, Reader]] = {}
    for f in cls.FIELDS:
        if not f.in_version(version):
            continue
        read = field_reader(f, version, flexible)
        if flexible and f.is_tagged(version):
            assert f.tag is not None
            tagged[f.tag] = (f.name, read)
        else:
            regular.append((f.name, read))

    def read_struct(buf: memoryview, pos: int) -> tuple[Any, int]:
        obj = cls()
        for name, read in regular:
            value, pos = read(buf, pos)
            setattr(obj, name, value)
        if flexible:
            count, pos = read_uvarint(buf, pos)
            for _ in range(count):
                tag, pos = read_uvarint(buf, pos)
                size, pos = read_uvarint(buf, pos)
                end = pos + size
                _check(buf, end)
                known = tagged.get(tag)
                if known is None:
                    obj.unknown_tags[tag] = bytes(buf[pos:end])
                else:
                    value, after = known[1](buf[:end], pos)
                    if after != end:
                        raise DecodeError(f"tagged field {tag} of {cls.__name__} has {end - after} extra bytes")
                    setattr(obj, known[0], value)
                pos = end
        return obj, pos

    _readers[key] = read_struct
    return read_struct


def field_reader(f: Field, version: int, flexible: bool) -> Reader:
    compact = is_compact(f, version, flexible)
    nullable = version in f.nullable
    if f.struct is not None:
        element: Reader = struct_reader(f.struct, version, flexible)
    else:
        element = reader_for(f.type, compact)
        if not f.array and not nullable and f.type in ("string", "bytes"):
            element = _required(element, f, version)
    if f.array:
        def read_array(buf: memoryview, pos: int) -> tuple[Any, int]:
            n, pos = read_array_length(buf, pos, compact)
            if n < 0:
                if not nullable:  # as Kafka refuses it: no handler has to expect None where the schema says never
                    raise DecodeError(f"{f.name} is null, which it may not be in version {version}")
                return None, pos
            if n > len(buf) - pos:  # every element takes at least one byte: refuse absurd counts early
                raise DecodeError(f"array of {n} elements in {len(buf) - pos} bytes")
            items = []
            for _ in range(n):
                item, pos = element(buf, pos)
                items.append(item)
            return items, pos
        return read_array
    if f.struct is not None and nullable:
        def read_nullable_struct(buf: memoryview, pos: int) -> tuple[Any, int]:
            marker = _struct.unpack_from(">b", buf, pos)[0]
            if marker < 0:
                return None, pos + 1
            return element(buf, pos + 1)
        return read_nullable_struct
    return element


def _required(read: Reader, f: Field, version: int) -> Reader:
    def read_required(buf: memoryview, pos: int) -> tuple[Any, int]:
        value, pos = read(buf, pos)
        if value is None:
            raise DecodeError(f"{f.name} is null, which it may not be in version {version}")
        return value, pos
    return read_required


def struct_writer(cls: type[Struct], version: int, flexible: bool) -> ValueWriter:
    """The compiled writer of one struct at one version."""
    key = (cls, version, flexible)
    cached = _writers.get(key)
    if cached is not None:
        return cached
    regular: list[tuple[str, ValueWriter]] = []
    tagged: list[tuple[int, str, ValueWriter, Field]] = []
    for f in cls.FIELDS:
        if not f.in_version(version):
            continue
        write = field_writer(f, version, flexible)
        if flexible and f.is_tagged(version):
            assert f.tag is not None
            tagged.append((f.tag, f.name, write, f))
        else:
            regular.append((f.name, write))
    tagged.sort(key=lambda t: t[0])

    def write_struct(w: Writer, obj: Any) -> None:
        for name, write in regular:
            write(w, getattr(obj, name))
        if not flexible:
            return
        entries: list[tuple[int, bytes | bytearray | memoryview]] = []
        for tag, name, write, f in tagged:
            value = getattr(obj, name)
            if value != f.default_value():  # Kafka writes a tagged field only when it is not the default
                sub = Writer()
                write(sub, value)
                entries.append((tag, sub.getvalue()))
        entries.extend(obj.unknown_tags.items())
        entries.sort(key=lambda e: e[0])
        w.uvarint(len(entries))
        for tag, data in entries:
            w.uvarint(tag)
            w.uvarint(len(data))
            w.raw(data)

    _writers[key] = write_struct
    return write_struct


def _primitive_writer(type_: str, compact: bool) -> ValueWriter:
    if type_ == "uuid":
        return lambda w, v: w.uuid(v)
    if type_ == "string":
        return lambda w, v: w.string(v, compact)
    if type_ in ("bytes", "records"):
        return lambda w, v: w.blob(v, compact)
    return lambda w, v: w.fixed(type_, v)


def field_writer(f: Field, version: int, flexible: bool) -> ValueWriter:
    compact = is_compact(f, version, flexible)
    nullable = version in f.nullable
    element = struct_writer(f.struct, version, flexible) if f.struct is not None else _primitive_writer(
        f.type, compact)
    if f.array:
        def write_array(w: Writer, items: Any) -> None:
            if items is None:
                w.length(-1, compact, wide=True)
                return
            w.length(len(items), compact, wide=True)
            for item in items:
                element(w, item)
        return write_array
    if f.struct is not None and nullable:
        def write_nullable_struct(w: Writer, value: Any) -> None:
            if value is None:
                w.fixed("int8", -1)
            else:
                w.fixed("int8", 1)
                element(w, value)
        return write_nullable_struct
    return element


def decode_from(cls: type[S], buf: bytes | bytearray | memoryview, version: int, flexible: bool,
                pos: int = 0) -> tuple[S, int]:
    """Decode one struct starting at `pos`; return it and the position after it."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    try:
        obj, end = struct_reader(cls, version, flexible)(view, pos)
    except (IndexError, _struct.error) as exc:
        raise DecodeError(f"{cls.__name__} v{version} is truncated: {exc}") from None
    return obj, end


def decode(cls: type[M], buf: bytes | bytearray | memoryview, version: int, pos: int = 0) -> M:
    """Decode a whole message body at `version`; trailing bytes are an error."""
    if version not in cls.VALID_VERSIONS:
        raise DecodeError(f"{cls.__name__} has no version {version}")
    obj, end = decode_from(cls, buf, version, version in cls.FLEXIBLE_VERSIONS, pos)
    if end != len(buf):
        raise DecodeError(f"{cls.__name__} v{version} has {len(buf) - end} trailing bytes")
    return obj


def encode_into(w: Writer, obj: Message, version: int) -> None:
    cls = type(obj)
    struct_writer(cls, version, version in cls.FLEXIBLE_VERSIONS)(w, obj)


def encode(obj: Message, version: int) -> bytes:
    """Encode a message body at `version` into one bytes object (tests and cold paths)."""
    w = Writer()
    encode_into(w, obj, version)
    return w.getvalue()
