"""The compression codecs of Kafka's record batches, as the Java client writes and reads them.

Used only where a batch must be opened (the topics whose tenant turned record encryption on); every
other batch passes through the proxy unread. gzip is the standard library's, snappy cramjam's (what
aiokafka uses), lz4 and zstd the lz4 and zstandard packages', which can stop decompressing at a bound: a
tenant's 1 MB batch must not become gigabytes in the proxy's memory. Two formats are Kafka's own:

- snappy: Java writes xerial's framing (a magic header, then length-prefixed raw snappy blocks);
  librdkafka writes a bare raw snappy block. Both are read; xerial's framing is written, as Java does.
- lz4: the LZ4 frame format with independent blocks (KIP-57): Kafka's reader does not follow linked ones.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from enum import IntEnum

import cramjam
import lz4.frame
import zstandard


class Codec(IntEnum):
    """The three low bits of a v2 batch's attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class CompressionError(Exception):
    """A batch whose records do not decompress (corrupt, or a codec Kafka does not have)."""


_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)  # version, minimum compatible version
_XERIAL_BLOCK = 32 * 1024  # what xerial's SnappyOutputStream uses by default
_INT32 = struct.Struct(">i")
Buffer = bytes | bytearray | memoryview


def _gzip_compress(data: Buffer) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member, as GZIPOutputStream writes
    return packer.compress(data) + packer.flush()


def _gzip_decompress(data: Buffer, limit: int) -> bytes:
    unpacker = zlib.decompressobj(47)  # wbits 47: gzip or zlib header, detected
    out = unpacker.decompress(data, limit + 1)
    if not unpacker.eof:
        raise CompressionError("gzip records truncated" if len(out) <= limit else _too_large(limit))
    return out


def _snappy_compress(data: Buffer) -> bytes:
    view = memoryview(data)
    out = [_XERIAL_HEADER]
    for at in range(0, len(view), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(view[at:at + _XERIAL_BLOCK]))
        out += (_INT32.pack(len(block)), block)
    return b"".join(out)


def _snappy_block(block: memoryview, limit: int) -> bytes:
    if cramjam.snappy.decompress_raw_len(block) > limit:  # a raw block says its length up front
        raise CompressionError(_too_large(limit))
    return bytes(cramjam.snappy.decompress_raw(block))


def _snappy_decompress(data: Buffer, limit: int) -> bytes:
    view = memoryview(data)
    if bytes(view[:8]) != _XERIAL_MAGIC:
        return _snappy_block(view, limit)  # librdkafka's: one raw block
    out = []
    at = len(_XERIAL_HEADER)
    while at < len(view):
        if at + 4 > len(view):
            raise CompressionError("xerial snappy block length truncated")
        (length,) = _INT32.unpack_from(view, at)
        at += 4
        if length < 0 or at + length > len(view):
            raise CompressionError("xerial snappy block overruns the batch")
        out.append(_snappy_block(view[at:at + length], limit))
        limit -= len(out[-1])
        at += length
    return b"".join(out)


def _lz4_compress(data: Buffer) -> bytes:
    packed: bytes = lz4.frame.compress(data, block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False,
                                       content_checksum=False, compression_level=0)
    return packed


def _lz4_decompress(data: Buffer, limit: int) -> bytes:
    unpacker = lz4.frame.LZ4FrameDecompressor()
    out: bytes = unpacker.decompress(data, max_length=limit + 1)
    if not unpacker.eof:
        raise CompressionError("lz4 records truncated" if len(out) <= limit else _too_large(limit))
    return out


def _zstd_compress(data: Buffer) -> bytes:
    return _ZSTD_PACKER.compress(data)


def _zstd_decompress(data: Buffer, limit: int) -> bytes:
    size = zstandard.get_frame_parameters(data).content_size
    if size != zstandard.CONTENTSIZE_UNKNOWN and size > limit:  # decompress() would trust it, and allocate it
        raise CompressionError(_too_large(limit))
    try:
        return _ZSTD_UNPACKER.decompress(data, max_output_size=limit)
    except zstandard.ZstdError as exc:  # a frame that needs more than `limit` reads as unfinished, too
        raise CompressionError(f"zstd records truncated or larger than {limit} bytes ({exc})") from None


def _too_large(limit: int) -> str:
    return f"records decompress to more than {limit} bytes"


_ZSTD_PACKER = zstandard.ZstdCompressor(level=3)  # Kafka's default zstd level (KIP-390)
_ZSTD_UNPACKER = zstandard.ZstdDecompressor()
_COMPRESS: dict[Codec, Callable[[Buffer], bytes]] = {
    Codec.GZIP: _gzip_compress, Codec.SNAPPY: _snappy_compress, Codec.LZ4: _lz4_compress, Codec.ZSTD: _zstd_compress}
_DECOMPRESS: dict[Codec, Callable[[Buffer, int], bytes]] = {
    Codec.GZIP: _gzip_decompress, Codec.SNAPPY: _snappy_decompress, Codec.LZ4: _lz4_decompress,
    Codec.ZSTD: _zstd_decompress}


def codec_of(attributes: int) -> Codec:
    try:
        return Codec(attributes & 0x07)
    except ValueError:
        raise CompressionError(f"unknown compression codec {attributes & 0x07}") from None


def compress(codec: Codec, data: Buffer) -> Buffer:
    return data if codec is Codec.NONE else _COMPRESS[codec](data)


def decompress(codec: Codec, data: Buffer, limit: int) -> Buffer:
    """The records of a batch compressed with `codec`; CompressionError if corrupt or over `limit` bytes."""
    if codec is Codec.NONE:
        return data
    try:
        return _DECOMPRESS[codec](data, limit)
    except (zlib.error, cramjam.DecompressionError, RuntimeError, zstandard.ZstdError, ValueError) as exc:
        raise CompressionError(f"{codec.name.lower()} records do not decompress: {exc}") from None
