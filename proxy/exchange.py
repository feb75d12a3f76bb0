"""One request's trip through the proxy: its frame, where it is in the pipeline, and its response.

An :class:`Exchange` is made for every frame a client sends and carries everything the stages learn
about it (the header, the rewriting context, the guard's verdict, the throttle deadline, timings),
so no stage keeps per-request state of its own and nothing needs to be remembered by object identity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from tenantry.protocol.headers import RequestHeader
from tenantry.protocol.scanner import Chunk, Ref
from tenantry.proxy.upstream import InFlight

if TYPE_CHECKING:
    from tenantry.proxy.rewrite.rewriter import RequestContext
    from tenantry.proxy.stage_context import StageContext

#: The clock for latencies: perf_counter resolves microseconds (uvloop's loop.time() only milliseconds).
now = time.perf_counter

#: A stage's work on the response: it gets the exchange once the broker has answered.
ResponseHook = Callable[["Exchange", "StageContext"], None]
_NO_HOOKS: tuple[ResponseHook, ...] = ()


class Exchange(InFlight):
    """A client request and, once it has one, its response."""

    __slots__ = ("api_key", "api_version", "arrived", "before_release", "body_offset", "chunks", "client_corr",
                 "edits", "frame", "header", "hooks", "new_brokers", "out", "parts", "raw", "received", "refused",
                 "response", "rewrite", "scanned", "sent", "settle", "throttle_until")

    def __init__(self, frame: memoryview, api_key: int, api_version: int, client_corr: int, raw: bool = False) -> None:
        super().__init__()
        self.frame = frame
        self.api_key = api_key
        self.api_version = api_version
        self.client_corr = client_corr
        self.raw = raw  # a bare SASL token (KIP-152, after SaslHandshake v0), not a Kafka request
        self.header: RequestHeader | None = None  # parsed once the API and version are known to be offered
        self.parts: list[Chunk] = []  # the request as it goes to the broker
        self.rewrite: RequestContext | None = None  # what the request's rewriting must remember for its response
        # The request's refs of (at least) TENANT_REQUEST, found once by an early stage: metering for a Produce
        # (traffic.PRODUCE_SCAN), authorization for a Fetch; the rewrite takes them rather than walk it again.
        self.scanned: list[Ref] | None = None
        # New values for some of `scanned`'s refs (a Produce's sealed records), spliced in by the rewrite.
        self.edits: list[tuple[Ref, object]] = []
        # When the proxy's quotas let this client go on (event-loop time): computed when the usage is
        # recorded, so the broker's time answering counts towards the delay, as in Kafka.
        self.throttle_until = 0.0
        self.refused: Sequence[object] = ()  # results of items a guard rail refused, added to the response
        self.settle: Callable[[], None] | None = None  # tells the guard rails the broker has answered
        self.hooks: tuple[ResponseHook, ...] | list[ResponseHook] = _NO_HOOKS
        self.response: memoryview | None = None  # the broker's response, from its correlation id on
        self.body_offset = 0  # where the response body starts in `response`
        self.chunks: list[Chunk] | None = None  # the response body as the client gets it, after the correlation id
        self.out: list[Chunk] | None = None  # the whole response frame, once it may be written
        self.new_brokers: object = None  # an awaitable: listeners for brokers the response named are opening
        self.before_release: Coroutine[Any, Any, None] | None = None  # a last check of the response (may raise)
        self.arrived = now()
        self.sent = 0.0
        self.received = 0.0

    @property
    def body(self) -> memoryview:
        """The request body (after the header)."""
        assert self.header is not None
        return self.frame[self.header.body_offset:]

    def on_response(self, hook: ResponseHook) -> None:
        """Run `hook` on the broker's response; hooks run in the reverse order of registration."""
        if self.hooks is _NO_HOOKS:
            self.hooks = [hook]
        else:
            assert isinstance(self.hooks, list)
            self.hooks.append(hook)

    def throttle_at_least(self, until: float) -> None:
        if until > self.throttle_until:
            self.throttle_until = until
