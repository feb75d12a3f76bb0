"""Buffers for received bytes: never zeroed, and the scratch buffers reused from connection to connection.

Zeroing a buffer that the socket is about to fill costs as much as the read itself (a 64 KiB scratch
buffer took 12-17 us per request on the benchmark machine). Every byte the framer hands out is one it
was given, so a buffer's old contents are never seen: not zeroed, and not another connection's either.
"""

from __future__ import annotations

from collections.abc import Callable

from tenantry.protocol.native import NATIVE

#: bytearray(size) without the zeroing, where the C extension is built.
new_buffer: Callable[[int], bytearray] = NATIVE.uninitialized_bytearray if NATIVE is not None else bytearray


class SparePool:
    """Scratch buffers of idle connections, kept for the next one that needs one of the same size.

    An idle connection holds no buffer (10,000 idle connections must stay small), but the next request
    on any connection would otherwise allocate one afresh. At most `keep` buffers of each size wait here.
    """

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._spare: dict[int, list[bytearray]] = {}

    def take(self, size: int) -> bytearray:
        spare = self._spare.get(size)
        return spare.pop() if spare else new_buffer(size)

    def give(self, buffer: bytearray) -> None:
        spare = self._spare.setdefault(len(buffer), [])
        if len(spare) < self.keep:
            spare.append(buffer)


#: The process's pool: the proxy runs one event loop, and the codec holds no other shared state.
SCRATCH = SparePool()
