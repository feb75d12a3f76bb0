"""Kafka's v2 record batches opened record by record and rebuilt, for the few topics that need it.

Only record encryption opens batches (every other batch crosses the proxy as an unread slice). A rebuilt
batch keeps everything of the original header (base offset, leader epoch, timestamps, producer id and
epoch, base sequence, record count, the transactional and timestamp-type bits) except its length, its
codec and its CRC-32C, which are recomputed; each record keeps its attributes, timestamp delta and
offset delta. Control batches (transaction markers) and legacy message sets (magic 0 and 1) are never
rebuilt: the callers pass them on as they are.

The layout (Kafka's DefaultRecordBatch)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 | crc uint32 |
    attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64 | producerId int64 |
    producerEpoch int16 | baseSequence int32 | recordsCount int32 | records...

and each record: length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
keyLength varint | key | valueLength varint | value | headerCount varint | [keyLength key valueLength value]...
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from crc32c import crc32c

from tenantry.protocol.compression import Codec, CompressionError, codec_of, compress, decompress
from tenantry.protocol.errors import DecodeError
from tenantry.protocol.native import NATIVE
from tenantry.protocol.primitives import encode_uvarint
from tenantry.protocol.records import LOG_OVERHEAD, MAGIC_OFFSET, RECORDS_COUNT_OFFSET, V2_HEADER

HEADER_SIZE = V2_HEADER  # 61
_CRC_AT = 17
_ATTRIBUTES_AT = 21
CONTROL = 0x20
TRANSACTIONAL = 0x10


class BatchError(Exception):
    """A batch that cannot be read record by record: truncated, lying about a length, or undecompressable."""


@dataclass(slots=True)
class Batch:
    """One complete batch of a records field: where it is, and its header's fields."""

    data: memoryview  # the whole batch, from its base offset
    magic: int
    attributes: int
    count: int

    @property
    def is_control(self) -> bool:
        return self.magic >= 2 and bool(self.attributes & CONTROL)

    @property
    def codec(self) -> Codec:
        return codec_of(self.attributes)


def batches(records: memoryview) -> tuple[list[Batch], int]:
    """The complete batches of a records field, and where the first incomplete one starts (a Fetch may
    end with a truncated batch, which clients drop; a Produce must not)."""
    out: list[Batch] = []
    pos, end = 0, len(records)
    while pos + LOG_OVERHEAD <= end:
        (length,) = struct.unpack_from(">i", records, pos + 8)
        size = LOG_OVERHEAD + length
        if length < 5 or pos + size > end:  # five bytes: leader epoch and magic, enough to tell the format
            break
        magic = records[pos + MAGIC_OFFSET]
        if magic >= 2:
            if size < HEADER_SIZE:
                raise BatchError(f"a v2 batch of {size} bytes is shorter than its header")
            (attributes,) = struct.unpack_from(">H", records, pos + _ATTRIBUTES_AT)
            (count,) = struct.unpack_from(">i", records, pos + RECORDS_COUNT_OFFSET)
            out.append(Batch(records[pos:pos + size], magic, attributes, count))
        else:
            out.append(Batch(records[pos:pos + size], magic, 0, 1))
        pos += size
    return out, pos


def open_records(batch: Batch, limit: int) -> memoryview:
    """A v2 batch's records section, decompressed; BatchError if its CRC or its compression is bad."""
    if batch.magic < 2:
        raise BatchError("a legacy message set has no v2 records")
    stored = (struct.unpack_from(">I", batch.data, _CRC_AT))[0]
    if crc32c(batch.data[_ATTRIBUTES_AT:]) != stored:
        raise BatchError("the batch's CRC-32C does not match its contents")
    try:
        return memoryview(decompress(batch.codec, batch.data[HEADER_SIZE:], limit))
    except CompressionError as exc:
        raise BatchError(str(exc)) from None


#: Where a record's parts are in its batch's records section: (start, fields, key_start, key_end,
#: value_start, value_end, headers, end). `start` is after the record's length prefix and `end` is
#: start + length; `fields` is where the key's length starts (after the attributes, timestamp delta and
#: offset delta); key and value are (-1, -1) when null; `headers` is where the header count starts.
Spans = tuple[int, int, int, int, int, int, int, int]


def record_spans(data: memoryview, count: int) -> list[Spans]:
    """Every record of a decompressed records section, walked to its last header: BatchError unless there are
    exactly `count` records, each as long as it says, with nothing after them (what a broker checks)."""
    if NATIVE is not None:
        try:
            return NATIVE.record_spans(data, count)  # type: ignore[no-any-return]
        except DecodeError as exc:
            raise BatchError(str(exc)) from None
    return record_spans_in_python(data, count)


def record_spans_in_python(data: memoryview, count: int) -> list[Spans]:
    """:func:`record_spans` in Python: the reference."""
    out: list[Spans] = []
    pos, end = 0, len(data)
    if count < 0:
        raise BatchError("a negative record count")
    try:
        for _ in range(count):
            length, pos = read_varint(data, pos)
            record_end = pos + length
            if length < 0 or record_end > end:
                raise BatchError("a record's length overruns its batch")
            _, at = read_varint(data, pos + 1)  # after the attributes byte: timestamp delta, offset delta
            _, fields = read_varint(data, at)
            key_start, key_end, at = _blob(data, fields, record_end)
            value_start, value_end, headers = _blob(data, at, record_end)
            header_count, at = read_varint(data, headers)
            if header_count < 0:
                raise BatchError("a negative header count")
            for _ in range(header_count):
                name_start, _, at = _blob(data, at, record_end)
                if name_start < 0:
                    raise BatchError("a header without a name")
                _, _, at = _blob(data, at, record_end)
            if at != record_end:
                raise BatchError("a record's fields do not end where its length says")
            out.append((pos, fields, key_start, key_end, value_start, value_end, headers, record_end))
            pos = record_end
    except IndexError:
        raise BatchError("the batch holds fewer records than it counts") from None
    if pos != end:
        raise BatchError("the batch holds more bytes than its records")
    return out


def _blob(data: memoryview, pos: int, limit: int) -> tuple[int, int, int]:
    length, pos = read_varint(data, pos)
    if length < 0:
        return -1, -1, pos
    if pos + length > limit:
        raise BatchError("a record field overruns its record")
    return pos, pos + length, pos + length


def rebuild(batch: Batch, records: bytes, codec: Codec) -> bytes:
    """The batch with this records section (as many records as before, each with its length prefix),
    compressed with `codec`, its length and CRC new."""
    body = compress(codec, records)
    head = bytearray(batch.data[:HEADER_SIZE])
    struct.pack_into(">i", head, 8, HEADER_SIZE - LOG_OVERHEAD + len(body))
    attributes = (batch.attributes & ~0x07) | codec
    struct.pack_into(">h", head, _ATTRIBUTES_AT, attributes)
    struct.pack_into(">I", head, _CRC_AT, crc32c(body, crc32c(head[_ATTRIBUTES_AT:])))
    return bytes(head) + body


# -- zigzag varints, as records use them (Kafka's ByteUtils) -------------------------------------------------

def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """A zigzag varint or varlong at `pos`, and the position after it; IndexError past the end."""
    byte = buf[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    raw, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            raw &= 0xFFFF_FFFF_FFFF_FFFF  # a tenth byte's high bits fall off, as in Java's (and the C reader's)
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise BatchError("a varint longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    """A zigzag varint (Kafka's ByteUtils.writeVarint/writeVarlong): the unsigned varint of the zigzag."""
    raw = ((value << 1) ^ (value >> 63)) & 0xFFFF_FFFF_FFFF_FFFF
    if raw < 0x80:
        return _SMALL[raw]
    if raw < 0x4000:  # two bytes: most record and value lengths
        return bytes(((raw & 0x7F) | 0x80, raw >> 7))
    return encode_uvarint(raw)


_SMALL = [bytes([n]) for n in range(0x80)]
