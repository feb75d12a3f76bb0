"""A request's place in a client connection's response order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tenantry.protocol.scanner import Chunk
from tenantry.proxy.rewrite.rewriter import RequestContext
from tenantry.proxy.traffic import Timed


class Slot(Timed):
    """A request's place in the response order, filled when its response is ready."""

    __slots__ = ("api_key", "api_version", "chunks", "client_corr", "ctx", "refused", "settle", "throttle_until")

    def __init__(self, client_corr: int, api_key: int, api_version: int,
                 ctx: RequestContext | None = None) -> None:
        super().__init__()
        self.client_corr = client_corr
        self.api_key = api_key
        self.api_version = api_version
        self.ctx = ctx or RequestContext()
        self.chunks: list[Chunk] | None = None
        # When the proxy's quotas let this client go on (event-loop time): computed when the usage is
        # recorded, so the broker's time answering counts towards the delay, as in Kafka.
        self.throttle_until = 0.0
        self.refused: Sequence[object] = ()  # results of items a guard rail refused, added to the response
        self.settle: Callable[[], None] | None = None  # tells the guard rails the broker has answered


