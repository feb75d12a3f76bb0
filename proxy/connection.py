"""One client connection: frames in, requests forwarded to its broker, responses out in request order.

States::

    CONNECTING --upstream ready--> OPEN --drain()--> DRAINING --outbox empty--> CLOSED
        |                          |  ^                                          ^
        |                          v  | re-authentication done                   |
        |                     HOLDING (broker re-authentication: requests wait)  |
        +------------- upstream failed / protocol error / peer closed -----------+

Every request gets a :class:`Slot` in the outbox, in arrival order, unless it gets no response at all
(Produce with acks=0). A slot is filled by the broker's response or by an answer the proxy makes
itself (ApiVersions, refusals); the outbox is written from its head as slots fill, so local answers
wait behind earlier forwarded ones, as clients require.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

from tenantry.protocol import ErrorCode, FrameTooLarge, ProtocolError, decode
from tenantry.protocol.envelope import produce_acks, response_frame
from tenantry.protocol.headers import (
    API_VERSIONS_KEY,
    is_known,
    parse_request_header,
    peek_request_header,
    response_body_offset,
    response_header_version,
)
from tenantry.protocol.messages import REQUESTS
from tenantry.protocol.messages.describe_cluster_response import DescribeClusterResponse
from tenantry.protocol.messages.sasl_authenticate_response import SaslAuthenticateResponse
from tenantry.protocol.messages.sasl_handshake_response import SaslHandshakeResponse
from tenantry.protocol.primitives import INT32
from tenantry.protocol.scanner import Chunk
from tenantry.protocol.schema import Message
from tenantry.proxy.addresses import carries_addresses, find_addresses, rewrite_addresses
from tenantry.proxy.api_versions import SASL_AUTHENTICATE, SASL_HANDSHAKE, api_versions_response
from tenantry.proxy.flow import ReadGate
from tenantry.proxy.receiver import FrameInput
from tenantry.proxy.upstream import InFlight, UpstreamConnection, UpstreamError

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.connection")
DESCRIBE_CLUSTER = 60


class Slot(InFlight):
    """A request's place in the response order, filled when its response is ready."""

    __slots__ = ("api_key", "api_version", "chunks", "client_corr")

    def __init__(self, client_corr: int, api_key: int, api_version: int) -> None:
        super().__init__()
        self.client_corr = client_corr
        self.api_key = api_key
        self.api_version = api_version
        self.chunks: list[Chunk] | None = None


class ClientConnection(asyncio.BufferedProtocol):
    """The proxy's side of one client's TCP connection (see the module docstring for its states)."""

    def __init__(self, server: ProxyServer, node_id: int | None) -> None:
        self.server = server
        self.config = server.config
        self.node_id = node_id  # None: the bootstrap listener
        self.gate = ReadGate()
        self.input = FrameInput(self.config.max_frame_bytes, server.memory, self.gate, self._on_frames)
        self.outbox: deque[Slot] = deque()
        self.upstream: UpstreamConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._held: list[memoryview] | None = []  # requests waiting for the broker connection
        self._draining = False
        self._closed = False
        self.done = asyncio.get_running_loop().create_future()

    # -- asyncio protocol -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.gate.attach(self.transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.server.connections.add(self)
        self.gate.block("connecting")
        asyncio.get_running_loop().create_task(self._connect_upstream())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.input.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self.input.buffer_updated(nbytes)
        except FrameTooLarge as exc:
            self.close(f"oversized request: {exc}")

    def _on_frames(self, frames: list[memoryview]) -> None:
        for frame in frames:
            if self._closed:
                return
            if self._held is not None:
                self._held.append(frame)
            else:
                self._on_request(frame)

    def eof_received(self) -> bool | None:
        self.close("client closed its side")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.input.close()
        self.server.connections.discard(self)
        if self.upstream is not None:
            self.upstream.owner = None
            self.upstream.close()
        if not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # -- upstream -------------------------------------------------------------------------------------
    async def _connect_upstream(self) -> None:
        try:
            self.upstream = await self.server.open_upstream(self.node_id, self)
        except UpstreamError as exc:
            self.close(f"cannot reach the broker: {exc}")
            return
        if self._closed:
            self.upstream.owner = None
            self.upstream.close()
            return
        self._release_held()
        self.gate.unblock("connecting")

    def on_upstream_response(self, entry: object, frame: memoryview) -> None:
        assert isinstance(entry, Slot)
        try:
            self._fill_from_upstream(entry, frame)
        except ProtocolError as exc:
            self.close(f"broker response to API {entry.api_key} v{entry.api_version} is malformed: {exc}")

    def on_upstream_lost(self, reason: str) -> None:
        self.close(reason)

    def on_upstream_congested(self, congested: bool) -> None:
        (self.gate.block if congested else self.gate.unblock)("broker congested")

    def on_reauthentication(self, running: bool) -> None:
        if running:
            self._held = []
        else:
            self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held or [], None
        for frame in held:  # _on_request holds them again, in order, if a re-authentication starts
            if self._closed:
                return
            self._on_request(frame)

    # -- requests -------------------------------------------------------------------------------------
    def _on_request(self, frame: memoryview) -> None:
        if self._held is not None:
            self._held.append(frame)
            return
        assert self.upstream is not None
        try:
            api_key, api_version, corr = peek_request_header(frame)
            if api_key == API_VERSIONS_KEY:
                self._answer_api_versions(api_version, corr)
                return
            if api_key in (SASL_HANDSHAKE, SASL_AUTHENTICATE) and is_known(api_key, api_version):
                # As a broker's PLAINTEXT listener answers: this listener does not do SASL.
                refusal: Message = (SaslHandshakeResponse if api_key == SASL_HANDSHAKE else SaslAuthenticateResponse)(
                    error_code=ErrorCode.ILLEGAL_SASL_STATE)
                self._answer(Slot(corr, api_key, api_version), refusal)
                return
            allowed = self.upstream.table.get(api_key)
            if allowed is None or api_version not in allowed or not is_known(api_key, api_version):
                # As a broker does: a version it never advertised cannot be answered in a layout the
                # client can read, so the connection is closed.
                self.close(f"API {api_key} v{api_version} is not offered by this proxy")
                return
            header = parse_request_header(frame)
            if api_key == DESCRIBE_CLUSTER and self._asks_for_controllers(frame, header.body_offset, api_version):
                self._answer(Slot(corr, api_key, api_version), DescribeClusterResponse(
                    error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                    error_message="controller endpoints are not served through the proxy"))
                return
            if api_key == 0 and produce_acks(frame, header.body_offset, api_version) == 0:
                self.upstream.forward(frame, None)
                return
        except ProtocolError as exc:
            self.close(f"malformed request: {exc}")
            return
        except (IndexError, ValueError) as exc:
            self.close(f"malformed request: {exc}")
            return
        slot = Slot(corr, api_key, api_version)
        self.outbox.append(slot)
        self.upstream.forward(frame, slot)
        if len(self.outbox) >= self.config.max_in_flight:
            self.gate.block("too many in flight")

    def _asks_for_controllers(self, frame: memoryview, body_offset: int, version: int) -> bool:
        if version < 1:
            return False
        request = decode(REQUESTS[DESCRIBE_CLUSTER], frame[body_offset:], version)
        return bool(getattr(request, "endpoint_type", 1) != 1)

    def _answer_api_versions(self, version: int, corr: int) -> None:
        assert self.upstream is not None
        table = self.upstream.table
        supported = table[API_VERSIONS_KEY]
        if version in supported:
            response = api_versions_response(table, self.upstream.broker_versions)
            self._answer(Slot(corr, API_VERSIONS_KEY, version), response)
        else:
            # KIP-511: a client newer than us gets a v0 answer with our ranges and picks a version from it.
            response = api_versions_response(table, None, ErrorCode.UNSUPPORTED_VERSION)
            self._answer(Slot(corr, API_VERSIONS_KEY, 0), response)

    def _answer(self, slot: Slot, response: Message) -> None:
        slot.chunks = [response_frame(response, slot.api_version, slot.client_corr)]
        self.outbox.append(slot)
        self._flush()

    # -- responses ------------------------------------------------------------------------------------
    def _fill_from_upstream(self, slot: Slot, frame: memoryview) -> None:
        head = INT32.pack(len(frame)) + INT32.pack(slot.client_corr)
        if not carries_addresses(slot.api_key, slot.api_version):
            slot.chunks = [head, frame[4:]]
            self._flush()
            return
        offset = response_body_offset(frame, response_header_version(slot.api_key, slot.api_version))
        triples = find_addresses(slot.api_key, slot.api_version, frame, offset)
        if not triples:
            slot.chunks = [head, frame[4:]]
            self._flush()
            return
        new_nodes = self.server.learn_brokers([(t[0].value, t[1].value, t[2].value) for t in triples])
        body = rewrite_addresses(frame, triples, self.config.advertised_host, self.config.broker_port)
        size = sum(len(c) for c in body)
        body[0] = body[0][4:]  # the first chunk starts at the old correlation id
        chunks: list[Chunk] = [INT32.pack(size) + INT32.pack(slot.client_corr), *body]
        if new_nodes is None:
            slot.chunks = chunks
            self._flush()
            return

        async def after_listeners() -> None:
            assert new_nodes is not None
            await new_nodes  # a client may connect to a new broker as soon as it reads this response
            slot.chunks = chunks
            self._flush()
        asyncio.get_running_loop().create_task(after_listeners())

    def _flush(self) -> None:
        if self.transport is None or self._closed:
            return
        outbox = self.outbox
        while outbox and outbox[0].chunks is not None:
            self.transport.writelines(outbox.popleft().chunks or ())
        if len(outbox) < self.config.max_in_flight // 2 + 1:
            self.gate.unblock("too many in flight")
        if self._draining and not outbox:
            self.close("drained")

    # -- closing --------------------------------------------------------------------------------------
    def drain(self) -> None:
        """Stop reading new requests; close once every in-flight response has been written."""
        self._draining = True
        self.gate.block("draining")
        if not self.outbox:
            self.close("drained")

    def close(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        level = logging.DEBUG if reason in ("drained", "client closed its side") else logging.INFO
        log.log(level, "closing connection from %s: %s", self.peer, reason)
        if self.transport is not None:
            self.transport.close()
        if self.upstream is not None:
            self.upstream.owner = None
            self.upstream.close()

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

