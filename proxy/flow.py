"""Flow control: a transport's reading is paused while any reason to pause holds."""

from __future__ import annotations

import asyncio


class ReadGate:
    """Pauses reading on a transport while at least one named reason is blocking it.

    Reasons are independent (the peer cannot keep up, too many requests in flight, upstream not ready),
    so each is added and removed on its own and reading resumes only when none is left.
    """

    __slots__ = ("_reasons", "_transport")

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._reasons: set[str] = set()

    def attach(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        if self._reasons:
            transport.pause_reading()

    def block(self, reason: str) -> None:
        if not self._reasons and self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()
        self._reasons.add(reason)

    def unblock(self, reason: str) -> None:
        if reason not in self._reasons:
            return
        self._reasons.discard(reason)
        if not self._reasons and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    @property
    def blocked(self) -> bool:
        return bool(self._reasons)
