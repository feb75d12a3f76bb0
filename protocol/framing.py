"""Sans-I/O framing of Kafka's size-prefixed messages, shaped for asyncio's BufferedProtocol.

Small frames are read into a scratch buffer and copied out once. A frame larger than the scratch
buffer gets its own buffer of exactly its size, and the socket reads straight into it, so a
multi-megabyte Produce request is never copied by the proxy on the way in.

Memory stays bounded: the scratch buffer exists only while bytes are waiting (an idle connection holds
none; its buffer goes back to :data:`~tenantry.protocol.buffers.SCRATCH` for the next reader), and a
big frame's buffer comes from an ``allocate`` callback that may refuse. A refused reader
is *starved*: the caller stops reading the socket and calls :meth:`FrameReader.retry` when memory is
free again (Kafka's broker does the same with its request memory pool).
"""

from __future__ import annotations

from collections.abc import Callable

from tenantry.protocol.buffers import SCRATCH, new_buffer
from tenantry.protocol.errors import FrameTooLarge
from tenantry.protocol.primitives import INT32

DEFAULT_MAX_FRAME = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes default
Allocator = Callable[[int], bytearray | None]
Releaser = Callable[[int], None]


def _allocate_freely(size: int) -> bytearray:
    return new_buffer(size)


def _release_nothing(size: int) -> None:
    return None


class FrameReader:
    """Turns a byte stream into frames (each without its 4-byte size prefix).

    Use either :meth:`feed` (bytes in, frames out) or the buffered pair :meth:`get_buffer` /
    :meth:`buffer_updated`. A size prefix that is negative or above ``max_frame`` raises
    :class:`FrameTooLarge`; the stream cannot be resynchronised after that, so the caller closes.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, scratch_size: int = 64 * 1024,
                 allocate: Allocator = _allocate_freely, release: Releaser = _release_nothing) -> None:
        self.max_frame = max_frame
        self.scratch_size = scratch_size
        self._allocate = allocate
        self._release = release
        self._scratch: bytearray | None = None
        self._start = 0  # first unconsumed byte in scratch
        self._end = 0  # end of valid bytes in scratch
        self._big: bytearray | None = None  # the buffer of a frame too big for scratch
        self._big_filled = 0
        self.starved_for = 0  # size of a big frame whose buffer the allocator refused

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return (self._end - self._start) + self._big_filled

    @property
    def starved(self) -> bool:
        return self.starved_for > 0

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        if self._big is not None:
            return memoryview(self._big)[self._big_filled:]
        if self._scratch is None:
            self._scratch = SCRATCH.take(self.scratch_size)
        elif self._end == len(self._scratch):
            self._compact()
        return memoryview(self._scratch)[self._end:]

    def buffer_updated(self, nbytes: int) -> list[memoryview]:
        if self._big is not None:
            self._big_filled += nbytes
            if self._big_filled < len(self._big):
                return []
            frame = memoryview(self._big)
            self._big, self._big_filled = None, 0
            self._release(len(frame))
            return [frame, *self._drain_scratch()]
        self._end += nbytes
        return self._drain_scratch()

    def close(self) -> None:
        """Give back a partly received big frame's memory (the peer went away)."""
        if self._big is not None:
            self._release(len(self._big))
            self._big, self._big_filled = None, 0
        self._drop_scratch()

    def retry(self) -> list[memoryview]:
        """After a refused allocation: try again; return any frames that completes."""
        return self._drain_scratch()

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Push bytes in; return every frame they complete (tests and simple callers)."""
        frames: list[memoryview] = []
        view = memoryview(data)
        while view:
            if self.starved:
                raise RuntimeError("feed() on a starved FrameReader: call retry() first")
            target = self.get_buffer()
            n = min(len(target), len(view))
            target[:n] = view[:n]
            view = view[n:]
            frames.extend(self.buffer_updated(n))
        return frames

    def _drain_scratch(self) -> list[memoryview]:
        frames: list[memoryview] = []
        scratch = self._scratch
        if scratch is None:
            return frames
        while self._end - self._start >= 4:
            size = INT32.unpack_from(scratch, self._start)[0]
            if size < 0 or size > self.max_frame:
                raise FrameTooLarge(f"frame size {size} is outside 0..{self.max_frame} bytes")
            available = self._end - self._start - 4
            body_start = self._start + 4
            if available >= size:
                frames.append(memoryview(scratch[body_start:body_start + size]))  # the one copy
                self._start = body_start + size
                continue
            if size + 4 > len(scratch):
                big = self._allocate(size)
                if big is None:
                    self.starved_for = size
                    return frames
                self.starved_for = 0
                big[:available] = scratch[body_start:self._end]
                self._big, self._big_filled = big, available
                self._start = self._end = 0
            break
        self.starved_for = 0
        if self._start == self._end:
            self._drop_scratch()  # an idle connection holds no buffer
        return frames

    def _drop_scratch(self) -> None:
        if self._scratch is not None:
            SCRATCH.give(self._scratch)
            self._scratch = None
        self._start = self._end = 0

    def _compact(self) -> None:
        assert self._scratch is not None
        remaining = self._end - self._start
        self._scratch[:remaining] = self._scratch[self._start:self._end]
        self._start, self._end = 0, remaining
