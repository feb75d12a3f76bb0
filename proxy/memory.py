"""A proxy-wide budget for the buffers of large frames still being received.

Like Kafka's ``queued.max.request.bytes``: a peer that announces a large frame gets its buffer only
while the budget allows; otherwise reading from it pauses until other frames complete. Many peers
announcing huge frames and sending them slowly cannot exhaust the proxy's memory.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

from tenantry.protocol.buffers import new_buffer


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: deque[Callable[[], None]] = deque()

    def allocate(self, size: int) -> bytearray | None:
        # One frame may always proceed when nothing else holds memory, or a frame larger than the
        # budget (but within max_frame_bytes) could never be received.
        if self.used and self.used + size > self.limit:
            return None
        self.used += size
        return new_buffer(size)

    def release(self, size: int) -> None:
        self.used -= size
        while self._waiters and self.used < self.limit:
            self._waiters.popleft()()

    def wait(self, wake: Callable[[], None]) -> None:
        """Call `wake` once memory has been released."""
        self._waiters.append(wake)

    def forget(self, wake: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(wake)


class TenantBudget:
    """One tenant's part of the proxy-wide budget: it may hold at most `cap` bytes of it at once.

    Like the proxy-wide budget, one frame may always proceed when the tenant holds nothing, so a frame
    larger than the cap (but within max_frame_bytes) can still be received.
    """

    def __init__(self, parent: MemoryBudget, cap: int) -> None:
        self.parent = parent
        self.cap = cap
        self.used = 0

    def allocate(self, size: int) -> bytearray | None:
        if self.used and self.used + size > self.cap:
            return None
        buffer = self.parent.allocate(size)
        if buffer is not None:
            self.used += size
        return buffer

    def release(self, size: int) -> None:
        self.used -= size
        self.parent.release(size)  # wakes the waiters, the tenant's own among them

    def wait(self, wake: Callable[[], None]) -> None:
        self.parent.wait(wake)

    def forget(self, wake: Callable[[], None]) -> None:
        self.parent.forget(wake)


Budget = MemoryBudget | TenantBudget
