"""Frames in from a socket, under the proxy's memory budget; shared by the client and broker sides."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tenantry.protocol import FrameReader
from tenantry.proxy.flow import ReadGate
from tenantry.proxy.memory import Budget


class FrameInput:
    """Feeds received bytes to a FrameReader and pauses reading while a big frame waits for memory."""

    def __init__(self, max_frame: int, budget: Budget, gate: ReadGate,
                 on_frames: Callable[[list[memoryview]], None], scratch_size: int = 64 * 1024) -> None:
        self.reader = FrameReader(max_frame, scratch_size, allocate=self._allocate, release=self._release)
        self._budget = budget
        self._holder = budget  # the budget that gave the big frame being received its buffer
        self._gate = gate
        self._on_frames = on_frames
        self._starved = False  # reading is paused until the budget has memory for the frame being received
        # The protocol hands the event loop this bound method itself: no call in between on every read.
        self.get_buffer = self.reader.get_buffer

    def admit_more(self, max_frame: int, budget: Budget, scratch_size: int) -> None:
        """From now on, take frames up to `max_frame` and big frames' buffers from `budget` (after a login).

        A big frame already being received keeps the buffer it has, and gives it back where it came from.
        """
        self.reader.max_frame, self.reader.scratch_size = max_frame, scratch_size
        self._budget.forget(self._schedule_retry)
        self._budget = budget

    def _allocate(self, size: int) -> bytearray | None:
        buffer = self._budget.allocate(size)
        if buffer is not None:
            self._holder = self._budget
        return buffer

    def _release(self, size: int) -> None:
        self._holder.release(size)

    def buffer_updated(self, nbytes: int) -> None:
        """Raises FrameTooLarge for a size prefix over the limit (the caller closes)."""
        self._on_frames(self.reader.buffer_updated(nbytes))
        if self.reader.starved_for or self._starved:  # rarely: most reads neither start nor end a wait
            self._wait_if_starved()

    def _wait_if_starved(self) -> None:
        self._starved = self.reader.starved
        if self._starved:
            self._gate.block("waiting for memory")
            self._budget.wait(self._schedule_retry)
        else:
            self._gate.unblock("waiting for memory")

    def _schedule_retry(self) -> None:
        # Released memory is announced from inside another connection's handler: retry on a fresh
        # loop turn so one connection's frames are never processed in the middle of another's.
        asyncio.get_running_loop().call_soon(self._memory_freed)

    def _memory_freed(self) -> None:
        self._on_frames(self.reader.retry())
        self._wait_if_starved()

    def close(self) -> None:
        self._budget.forget(self._schedule_retry)
        self._holder.forget(self._schedule_retry)
        self.reader.close()
