"""The hot path: find resource fields in an encoded message and splice replacements in, without decoding.

A scanner is compiled per (struct, version, wanted entities). It walks the wire bytes, skipping every
subtree that holds no wanted entity (record batches are skipped by their length, never read), and
reports each wanted field as a :class:`Ref` with its byte span. :func:`splice` then builds the new
message as a list of slices of the original plus the few re-encoded fields; the size prefix of every
tagged field that encloses a change is re-encoded too.
"""

from __future__ import annotations

import struct as _struct
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from tenantry.protocol.codec import is_compact
from tenantry.protocol.errors import DecodeError
from tenantry.protocol.layout import contains_entity, fixed_size
from tenantry.protocol.native import NATIVE
from tenantry.protocol.primitives import (
    FIXED_SIZES,
    Writer,
    encode_uvarint,
    read_array_length,
    read_uvarint,
    reader_for,
    skipper_for,
)
from tenantry.protocol.scan_program import program
from tenantry.protocol.schema import Field, Message, Struct


class TagSpan(NamedTuple):
    """Where a tagged field's size prefix starts and ends, and where its content ends."""

    size_start: int
    size_end: int
    content_end: int


@dataclass(slots=True)
class Ref:
    """One wanted field found in a message: its entity, byte span and decoded value."""

    entity: str
    start: int
    end: int
    value: Any
    type: str
    compact: bool
    tags: tuple[TagSpan, ...]


Scan = Callable[[memoryview, int, list[Ref], tuple[TagSpan, ...]], int]
_scanners: dict[tuple[type[Struct], int, bool, frozenset[str]], Scan] = {}


def struct_scanner(cls: type[Struct], version: int, flexible: bool, wanted: frozenset[str]) -> Scan:
    key = (cls, version, flexible, wanted)
    cached = _scanners.get(key)
    if cached is not None:
        return cached
    steps: list[Scan] = []
    tagged: dict[int, Scan] = {}
    fixed_run = 0  # bytes of adjacent fixed-size fields nobody wants: skipped in one step
    for f in cls.FIELDS:
        if not f.in_version(version):
            continue
        if flexible and f.is_tagged(version):
            assert f.tag is not None
            if f.entity in wanted or (f.struct is not None and contains_entity(f.struct, wanted)):
                tagged[f.tag] = _field_scanner(f, version, flexible, wanted)
            continue
        if f.struct is None and not f.array and f.entity not in wanted and f.type in FIXED_SIZES:
            fixed_run += FIXED_SIZES[f.type]
            continue
        if fixed_run:
            steps.append(_skip_bytes(fixed_run))
            fixed_run = 0
        steps.append(_field_scanner(f, version, flexible, wanted))
    if fixed_run:
        steps.append(_skip_bytes(fixed_run))

    def scan(buf: memoryview, pos: int, out: list[Ref], tags: tuple[TagSpan, ...]) -> int:
        for step in steps:
            pos = step(buf, pos, out, tags)
        if flexible:
            count, pos = read_uvarint(buf, pos)
            for _ in range(count):
                tag, pos = read_uvarint(buf, pos)
                size_start = pos
                size, pos = read_uvarint(buf, pos)
                end = pos + size
                if end > len(buf):
                    raise DecodeError("tagged field runs past the end of the message")
                inner = tagged.get(tag)
                if inner is not None:
                    after = inner(buf[:end], pos, out, (*tags, TagSpan(size_start, pos, end)))
                    if after != end:
                        raise DecodeError(f"tagged field {tag} of {cls.__name__} is malformed")
                pos = end
        return pos

    _scanners[key] = scan
    return scan


def _skip_bytes(size: int) -> Scan:
    def skip(buf: memoryview, pos: int, out: list[Ref], tags: tuple[TagSpan, ...]) -> int:
        end = pos + size
        if end > len(buf):
            raise DecodeError("message is truncated")
        return end
    return skip


def _field_scanner(f: Field, version: int, flexible: bool, wanted: frozenset[str]) -> Scan:
    compact = is_compact(f, version, flexible)
    if f.struct is not None:
        element_size = fixed_size(f.struct, version, flexible)
        element = struct_scanner(f.struct, version, flexible, wanted)
        if not contains_entity(f.struct, wanted) and element_size is not None:
            size = element_size

            def skip_fixed(buf: memoryview, pos: int, out: list[Ref], tags: tuple[TagSpan, ...]) -> int:
                return pos + size
            element = skip_fixed
    elif f.entity in wanted:
        element = _ref_scanner(f, compact)
    else:
        skip = skipper_for(f.type, compact)

        def element(buf: memoryview, pos: int, out: list[Ref], tags: tuple[TagSpan, ...]) -> int:
            return skip(buf, pos)
    if f.array:
        def scan_array(buf: memoryview, pos: int, out: list[Ref], tags: tuple[TagSpan, ...]) -> int:
            n, pos = read_array_length(buf, pos, compact)
            if n > len(buf) - pos:
                raise DecodeError(f"array of {n} elements in {len(buf) - pos} bytes")
            for _ in range(n):
                pos = element(buf, pos, out, tags)
            return pos
        return scan_array
    if f.struct is not None and version in f.nullable:
        def scan_nullable(buf: memoryview, pos: int, out: list[Ref], tags: tuple[TagSpan, ...]) -> int:
            if _struct.unpack_from(">b", buf, pos)[0] < 0:
                return pos + 1
            return element(buf, pos + 1, out, tags)
        return scan_nullable
    return element


def _ref_scanner(f: Field, compact: bool) -> Scan:
    read = reader_for(f.type, compact)
    entity, type_ = f.entity, f.type
    assert entity is not None

    def scan_ref(buf: memoryview, pos: int, out: list[Ref], tags: tuple[TagSpan, ...]) -> int:
        value, end = read(buf, pos)
        out.append(Ref(entity, pos, end, value, type_, compact, tags))
        return end
    return scan_ref


def scan(cls: type[Message], version: int, buf: memoryview, pos: int, wanted: frozenset[str]) -> list[Ref]:
    """Every field of a wanted entity in the message body at buf[pos:], in wire order."""
    if NATIVE is not None:
        compiled = program(cls, version, wanted)
        return NATIVE.scan(compiled.code, compiled.consts, buf, pos)  # type: ignore[no-any-return]
    return scan_in_python(cls, version, buf, pos, wanted)


def scan_in_python(cls: type[Message], version: int, buf: memoryview, pos: int, wanted: frozenset[str]) -> list[Ref]:
    """:func:`scan` by the reference walk, in Python (without the C extension, and in its tests)."""
    out: list[Ref] = []
    try:
        struct_scanner(cls, version, version in cls.FLEXIBLE_VERSIONS, wanted)(buf, pos, out, ())
    except (IndexError, _struct.error) as exc:
        raise DecodeError(f"{cls.__name__} v{version} is truncated: {exc}") from None
    return out


def encode_value(ref: Ref, value: Any) -> bytes:
    """The wire form of a replacement value for `ref`, in the same layout as the original."""
    w = Writer()
    if ref.type == "string":
        w.string(value, ref.compact)
    elif ref.type == "uuid":
        w.uuid(value)
    elif ref.type in ("bytes", "records"):
        w.blob(value, ref.compact)
    else:
        w.fixed(ref.type, value)
    return w.getvalue()


Chunk = bytes | bytearray | memoryview


def splice(buf: memoryview, changes: Iterable[tuple[Ref, Any]], start: int = 0) -> list[Chunk]:
    """buf[start:] with each ref's bytes replaced by its new value; unchanged bytes are slices, not copies."""
    if NATIVE is not None:
        changes = changes if isinstance(changes, list) else list(changes)
        done = NATIVE.splice(buf, changes, start)
        if done is not NotImplemented:  # edits inside tagged fields, and rare types, are the reference's
            return done  # type: ignore[no-any-return]
    return splice_in_python(buf, changes, start)


def splice_in_python(buf: memoryview, changes: Iterable[tuple[Ref, Any]], start: int = 0) -> list[Chunk]:
    """:func:`splice` in Python: the reference, and the whole of it without the C extension."""
    edits: list[tuple[int, int, bytes]] = []
    spans: set[TagSpan] = set()
    for ref, value in changes:
        edits.append((ref.start, ref.end, encode_value(ref, value)))
        spans.update(ref.tags)
    # Innermost tagged fields first, so an outer one's new size counts the inner one's new size prefix.
    for span in sorted(spans, key=lambda s: s.content_end - s.size_end):
        delta = sum(len(new) - (end - begin) for begin, end, new in edits
                    if span.size_end <= begin and end <= span.content_end)
        if delta:
            new_size = span.content_end - span.size_end + delta
            edits.append((span.size_start, span.size_end, encode_uvarint(new_size)))
    edits.sort(key=lambda e: e[0])
    parts: list[Chunk] = []
    pos = start
    for begin, end, new in edits:
        if begin > pos:
            parts.append(buf[pos:begin])
        parts.append(new)
        pos = end
    if pos < len(buf):
        parts.append(buf[pos:])
    return parts


if NATIVE is not None:  # the types the C scanner builds
    NATIVE.setup(Ref, TagSpan, uuid.UUID, uuid.SafeUUID.unknown)
#: Which scanner runs: "C" or "Python" (the start-up log and tenantry_build_info say which).
SCANNER = "Python" if NATIVE is None else "C"
