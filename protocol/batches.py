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

_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = _HEADER.size  # 61
LOG_OVERHEAD = 12  # base offset and batch length: what batchLength does not count
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
        magic = records[pos + 16]
        if magic >= 2:
            if size < HEADER_SIZE:
                raise BatchError(f"a v2 batch of {size} bytes is shorter than its header")
            attributes, count = records[pos + _ATTRIBUTES_AT] << 8 | records[pos + _ATTRIBUTES_AT + 1], 0
            (count,) = struct.unpack_from(">i", records, pos + 57)
            out.append(Batch(records[pos:pos + size], magic, attributes, count))
        else:
            out.append(Batch(records[pos:pos + size], magic, 0, 1))
        pos += size
    return out, pos


def records_of(batch: Batch, limit: int) -> list[memoryview]:
    """Each record of a v2 batch, without its length prefix; BatchError if the batch lies about itself."""
    if batch.magic < 2:
        raise BatchError("a legacy message set has no v2 records")
    stored = (struct.unpack_from(">I", batch.data, _CRC_AT))[0]
    if crc32c(batch.data[_ATTRIBUTES_AT:]) != stored:
        raise BatchError("the batch's CRC-32C does not match its contents")
    try:
        data = memoryview(decompress(batch.codec, batch.data[HEADER_SIZE:], limit))
    except CompressionError as exc:
        raise BatchError(str(exc)) from None
    out: list[memoryview] = []
    pos, end = 0, len(data)
    try:
        for _ in range(batch.count):
            length, pos = read_varint(data, pos)
            if length < 0 or pos + length > end:
                raise BatchError("a record's length overruns its batch")
            out.append(data[pos:pos + length])
            pos += length
    except IndexError:
        raise BatchError("the batch holds fewer records than it counts") from None
    if pos != end:
        raise BatchError("the batch holds more bytes than its records")
    return out


def rebuild(batch: Batch, records: list[bytes | memoryview], codec: Codec) -> bytes:
    """The batch with these records (as many as before), compressed with `codec`, its length and CRC new."""
    assert len(records) == batch.count
    parts: list[bytes | memoryview] = []
    for record in records:
        parts += (encode_varint(len(record)), record)
    body = compress(codec, b"".join(parts))
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
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise BatchError("a varint longer than 10 bytes")


def encode_varint(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    if 0 <= raw < 0x80:
        return _SMALL[raw]
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


_SMALL = [bytes([n]) for n in range(0x80)]


def fields_start(record: memoryview) -> int:
    """Where a record's key length starts: after its attributes, timestamp delta and offset delta."""
    _, pos = read_varint(record, 1)
    _, pos = read_varint(record, pos)
    return pos


def read_blob(record: memoryview, pos: int) -> tuple[int, int, int]:
    """A key, value or header part at `pos`: its content's start and end ((-1, -1) for null), and the
    position after it. BatchError if its length overruns the record."""
    length, pos = read_varint(record, pos)
    if length < 0:
        return -1, -1, pos
    if pos + length > len(record):
        raise BatchError("a record field overruns its record")
    return pos, pos + length, pos + length
