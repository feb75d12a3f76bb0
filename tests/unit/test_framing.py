"""FrameReader: every input is read whole, byte by byte, and followed by garbage (h11's discipline)."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantry.protocol import FrameReader, FrameTooLarge


def frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body  # int32 size prefix, then the body


BODIES = [b"", b"\x00\x12\x00\x03", b"x" * 1000]


def test_whole_buffer_yields_every_frame():
    reader = FrameReader()
    frames = reader.feed(b"".join(frame(b) for b in BODIES))
    assert [bytes(f) for f in frames] == BODIES
    assert reader.buffered == 0


def test_byte_by_byte_yields_the_same_frames():
    reader = FrameReader()
    data = b"".join(frame(b) for b in BODIES)
    frames = []
    for i in range(len(data)):
        frames += reader.feed(data[i:i + 1])
    assert [bytes(f) for f in frames] == BODIES


def test_trailing_partial_frame_is_held_not_returned():
    reader = FrameReader()
    frames = reader.feed(frame(b"abc") + b"\x00\x00\x00\x10partial")
    assert [bytes(f) for f in frames] == [b"abc"]
    assert reader.buffered == 4 + len(b"partial")


def test_trailing_garbage_with_a_huge_size_is_refused():
    reader = FrameReader(max_frame=1024)
    with pytest.raises(FrameTooLarge):
        reader.feed(frame(b"ok") + b"\x7f\xff\xff\xffgarbage")


def test_negative_size_is_refused():
    with pytest.raises(FrameTooLarge):
        FrameReader().feed(b"\xff\xff\xff\xfe")


def test_frame_larger_than_scratch_is_read_into_its_own_buffer():
    reader = FrameReader(scratch_size=64)
    body = bytes(range(256)) * 40
    frames = reader.feed(frame(body) + frame(b"after"))
    assert [bytes(f) for f in frames] == [body, b"after"]


def test_buffered_reads_go_straight_into_a_big_frames_buffer():
    reader = FrameReader(scratch_size=64)
    body = b"r" * 10_000
    data = memoryview(frame(body))
    frames = []
    while data:
        target = reader.get_buffer()
        n = min(len(target), len(data), 777)
        target[:n] = data[:n]
        data = data[n:]
        frames += reader.buffer_updated(n)
    assert [bytes(f) for f in frames] == [body]


@given(st.lists(st.binary(max_size=300), max_size=8), st.lists(st.integers(1, 50), min_size=1))
def test_any_chunking_gives_the_same_frames(bodies, chunk_sizes):
    data = b"".join(frame(b) for b in bodies)
    reader = FrameReader(scratch_size=128)
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = chunk_sizes[i % len(chunk_sizes)]
        out += reader.feed(data[pos:pos + n])
        pos, i = pos + n, i + 1
    assert [bytes(f) for f in out] == bodies


@given(st.binary(max_size=2000))
def test_random_bytes_either_frame_or_raise_frame_too_large(data):
    reader = FrameReader(max_frame=4096, scratch_size=256)
    try:
        frames = reader.feed(data)
    except FrameTooLarge:
        return
    assert sum(len(f) + 4 for f in frames) + reader.buffered == len(data)


def test_a_request_of_just_the_fixed_header_fields_is_a_decode_error():
    # Found by make fuzz: 8 bytes (key, version, correlation id) and no client id length raised struct.error,
    # which no caller expected, and the transport died with a traceback.
    import pytest

    from tenantry.protocol import DecodeError
    from tenantry.protocol.headers import parse_request_header

    with pytest.raises(DecodeError):
        parse_request_header(memoryview(b"\x00\x03\x00\x0c\x00\x00\x00\x01"))
