"""Sans-I/O framing of Kafka's size-prefixed messages, shaped for asyncio's BufferedProtocol.

Small frames are read into a reusable scratch buffer and copied out once. A frame larger than the
scratch buffer gets its own buffer of exactly its size, and the socket reads straight into it, so a
multi-megabyte Produce request is never copied by the proxy on the way in.
"""

from __future__ import annotations

from tenantry.protocol.errors import FrameTooLarge
from tenantry.protocol.primitives import INT32

DEFAULT_MAX_FRAME = 100 * 1024 * 1024  # Kafka's socket.request.max.bytes default


class FrameReader:
    """Turns a byte stream into frames (each without its 4-byte size prefix).

    Use either :meth:`feed` (bytes in, frames out) or the buffered pair :meth:`get_buffer` /
    :meth:`buffer_updated`. A size prefix that is negative or above ``max_frame`` raises
    :class:`FrameTooLarge`; the stream cannot be resynchronised after that, so the caller closes.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, scratch_size: int = 256 * 1024) -> None:
        self.max_frame = max_frame
        self._scratch = bytearray(scratch_size)
        self._scratch_view = memoryview(self._scratch)
        self._start = 0  # first unconsumed byte in scratch
        self._end = 0  # end of valid bytes in scratch
        self._big: bytearray | None = None  # the buffer of a frame too big for scratch
        self._big_filled = 0

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return (self._end - self._start) + self._big_filled

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        if self._big is not None:
            return memoryview(self._big)[self._big_filled:]
        if self._end == len(self._scratch):
            self._compact()
        return self._scratch_view[self._end:]

    def buffer_updated(self, nbytes: int) -> list[memoryview]:
        if self._big is not None:
            self._big_filled += nbytes
            if self._big_filled < len(self._big):
                return []
            frame = memoryview(self._big)
            self._big, self._big_filled = None, 0
            return [frame]
        self._end += nbytes
        return self._drain_scratch()

    def feed(self, data: bytes | bytearray | memoryview) -> list[memoryview]:
        """Push bytes in; return every frame they complete."""
        frames: list[memoryview] = []
        view = memoryview(data)
        while view:
            target = self.get_buffer()
            n = min(len(target), len(view))
            target[:n] = view[:n]
            view = view[n:]
            frames.extend(self.buffer_updated(n))
        return frames

    def _drain_scratch(self) -> list[memoryview]:
        frames: list[memoryview] = []
        while self._end - self._start >= 4:
            size = INT32.unpack_from(self._scratch, self._start)[0]
            if size < 0 or size > self.max_frame:
                raise FrameTooLarge(f"frame size {size} is outside 0..{self.max_frame} bytes")
            available = self._end - self._start - 4
            if available >= size:
                body_start = self._start + 4
                frames.append(memoryview(bytes(self._scratch_view[body_start:body_start + size])))
                self._start = body_start + size
                continue
            if size + 4 > len(self._scratch):
                self._big = bytearray(size)
                self._big[:available] = self._scratch_view[self._start + 4:self._end]
                self._big_filled = available
                self._start = self._end = 0
                if available == size:  # pragma: no cover - handled by the branch above
                    break
            break
        if self._start == self._end:
            self._start = self._end = 0
        return frames

    def _compact(self) -> None:
        remaining = self._end - self._start
        self._scratch[:remaining] = self._scratch_view[self._start:self._end]
        self._start, self._end = 0, remaining
