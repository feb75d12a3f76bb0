"""One client connection: frames in, requests forwarded to its broker, responses out in request order.

States::

    (tenants) AUTHENTICATING --login--> IDLE --first request for the broker--> CONNECTING --upstream ready-->
              OPEN --drain()--> DRAINING --> CLOSED
    (no tenants)                        CONNECTING --upstream ready--> OPEN
                                                   OPEN <--> HOLDING (the proxy re-authenticates upstream)
    any state --upstream failed / protocol error / bad login / peer closed--> CLOSED

Every request gets a :class:`Slot` in the outbox, in arrival order, unless it gets no response at all
(Produce with acks=0). A slot is filled by the broker's response or by an answer the proxy makes
itself (ApiVersions, SASL, refusals); the outbox is written from its head as slots fill, so local
answers wait behind earlier forwarded ones, as clients require.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import deque
from typing import TYPE_CHECKING, cast

from tenantry.protocol import ErrorCode, FrameTooLarge, ProtocolError, decode, encode
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
from tenantry.protocol.messages.fetch_response import FetchResponse
from tenantry.protocol.messages.sasl_authenticate_response import SaslAuthenticateResponse
from tenantry.protocol.messages.sasl_handshake_response import SaslHandshakeResponse
from tenantry.protocol.primitives import INT32
from tenantry.protocol.scanner import Chunk
from tenantry.protocol.schema import Message, Versions
from tenantry.proxy.api_versions import SASL_HANDSHAKE, api_versions_response
from tenantry.proxy.client_auth import ClientAuth
from tenantry.proxy.client_login import SASL_VERSIONS, ClientLogin
from tenantry.proxy.enforcement import FETCH_KEY, PRODUCE_KEY, Throttler
from tenantry.proxy.flow import ReadGate
from tenantry.proxy.guard import Verdict, merge_refused
from tenantry.proxy.logs import ConnectionLog
from tenantry.proxy.metrics import api_name
from tenantry.proxy.receiver import FrameInput
from tenantry.proxy.rewrite.policy import tenant_table
from tenantry.proxy.rewrite.rewriter import Addresses, Leak, Rewriter, UnknownTopicIds
from tenantry.proxy.rewrite.special import Refusal
from tenantry.proxy.slot import Slot
from tenantry.proxy.throttle import (
    client_throttles,
    has_throttle_field,
    overwrite_int32,
    read_throttle,
    rewrite_throttle_field,
    throttle_offset,
)
from tenantry.proxy.traffic import TrafficMeter, now
from tenantry.proxy.upstream import UpstreamConnection, UpstreamError
from tenantry.tenants.quotas import PRODUCE

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.connection")
DESCRIBE_CLUSTER = 60
HOLDING = "holding requests"


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
        self.client_id: str | None = None
        self.log_context: dict[str, str] = {}
        self.log = ConnectionLog(log, self.log_context)
        self.meter = TrafficMeter(server.stats)
        self._counted = not self.config.tenants_enabled  # in the tenant's connection counts (after login)
        self._age_limit: asyncio.TimerHandle | None = None
        self.auth: ClientAuth | None = None
        self.login: ClientLogin | None = None
        self.rewriter: Rewriter | None = None
        self.throttler: Throttler | None = None  # once a tenant's user has logged in
        self._held: list[memoryview] | None = None  # requests waiting for the broker connection
        self._table_source: dict[int, Versions] | None = None
        self._tenant_table: dict[int, Versions] = {}
        self._ids_looked_up_for: memoryview | None = None
        # Requests counted in the metrics and then held, to be replayed: not to be counted twice.
        self._counted_frames: set[int] = set()
        self._guarded_frame: memoryview | None = None  # the last request a guard rail checked (and changed)
        self._guard_verdict: Verdict | None = None
        self._draining = False
        self._drain_reason = "drained"
        self._closed = False
        self.done = asyncio.get_running_loop().create_future()
        if self.config.tenants_enabled:
            self.auth = ClientAuth(server.login_registry, self.config.sasl_enabled_mechanisms,
                                   self.config.sasl_session_lifetime_ms, server.secret)
            self.login = ClientLogin(self, self.auth)
        else:
            self.rewriter = Rewriter(None, server.topic_ids)

    @property
    def principal_name(self) -> str | None:
        return self.auth.principal.name if self.auth and self.auth.principal else None

    # -- asyncio protocol -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.gate.attach(self.transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.log_context["peer"] = self.peer
        self.server.connections.add(self)
        self.server.stats.accepted += 1
        if self._counted:
            self.meter.tenant.connections_opened += 1
        wait = self.server.quotas.accept_delay()
        if wait > self.server.quotas.max_delay:
            self.meter.tenant.connections_refused["capacity_connections_per_sec"] += 1
            self.close("the proxy's connection rate (capacity_connections_per_sec) is exceeded")
            return
        age = self.config.max_connection_age_seconds
        if age > 0:  # jitter spreads the reconnections, so a fleet of clients does not move at once
            age *= 1 - random.uniform(0, self.config.max_connection_age_jitter)
            self._age_limit = asyncio.get_running_loop().call_later(age, self._aged_out)
        if wait > 0:  # as Kafka delays accepting (KIP-612): nothing is read until then
            self.gate.block("connection rate")
            asyncio.get_running_loop().call_later(wait, self.gate.unblock, "connection rate")
        if self.auth is None:
            self._start_upstream()

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
            self._on_request(frame)

    def eof_received(self) -> bool | None:
        self.close("client closed its side")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.input.close()
        self.server.connections.discard(self)
        self.meter.closed(self._counted)
        if self._age_limit is not None:
            self._age_limit.cancel()
        if self.upstream is not None:
            self.upstream.owner = None
            self.upstream.close()
        if self.throttler is not None:
            self.throttler.close()
            self.throttler = None
        if not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # -- upstream -------------------------------------------------------------------------------------
    def _start_upstream(self) -> None:
        self._held = []
        self.gate.block("connecting")
        asyncio.get_running_loop().create_task(self._connect_upstream())

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
        entry.received = now()
        try:
            self._fill_from_upstream(entry, frame)
        except Leak as exc:
            self.log.error("dropped a response to %s for %s: %s", self.principal_name, self.peer, exc)
            self.close("response would have leaked another tenant's name")
        except ProtocolError as exc:
            self.close(f"broker response to API {entry.api_key} v{entry.api_version} is malformed: {exc}",
                       entry.api_key)

    def on_upstream_lost(self, reason: str) -> None:
        self.close(reason)

    def on_upstream_congested(self, congested: bool) -> None:
        (self.gate.block if congested else self.gate.unblock)("broker congested")

    def on_reauthentication(self, running: bool) -> None:
        if running:
            self.hold()
        else:
            self._release_held()

    def hold(self) -> None:
        """Hold requests from now on (in order) until they are released, and read no more meanwhile.

        Held requests meet the quotas only when replayed. Reading on, a client that pipelines (librdkafka)
        would queue seconds of them during a broker re-authentication, and their replay would reach the
        broker as one burst: 17 produce requests at once, 1.75x a user's quota over a 10 s test.
        """
        self._held = []
        self.gate.block(HOLDING)

    def take_held(self) -> list[memoryview]:
        """Stop holding; the requests held so far, for :meth:`replay`."""
        held, self._held = self._held or [], None
        self.gate.unblock(HOLDING)
        return held

    def replay(self, frames: list[memoryview]) -> None:
        for frame in frames:  # _on_request holds them again, in order, if something holds requests anew
            if self._closed:
                return
            self._on_request(frame)

    def _release_held(self) -> None:
        self.replay(self.take_held())

    @property
    def closed(self) -> bool:
        return self._closed

    # -- requests -------------------------------------------------------------------------------------
    def _table(self) -> dict[int, Versions]:
        """The versions this client may use. Built once per version table it derives from, not per request."""
        if self.upstream is not None and self.auth is None:
            return self.upstream.table
        source = self.server.api_table if self.upstream is None else self.upstream.table
        if self._table_source is not source:
            self._table_source, self._tenant_table = source, tenant_table(source) | SASL_VERSIONS
        return self._tenant_table

    def _on_request(self, frame: memoryview) -> None:
        if self._held is not None:
            self._held.append(frame)
            return
        if self.login is not None and self.login.raw:
            self.login.raw_token(frame)
            return
        try:
            api_key, api_version, corr = peek_request_header(frame)
            fresh = id(frame) not in self._counted_frames
            if fresh:
                self.meter.request(api_key, len(frame) + 4)
            else:
                self._counted_frames.discard(id(frame))
            if api_key == API_VERSIONS_KEY:
                self._answer_api_versions(api_version, corr)
                return
            if self.login is not None and self.login.request(frame, api_key, api_version, corr):
                return
            if self.auth is None and api_key in SASL_VERSIONS and api_version in SASL_VERSIONS[api_key]:
                # No tenants: answer as a broker's plaintext listener does.
                refusal: Message = (SaslHandshakeResponse if api_key == SASL_HANDSHAKE else SaslAuthenticateResponse)(
                    error_code=ErrorCode.ILLEGAL_SASL_STATE)
                self.answer(Slot(corr, api_key, api_version), refusal)
                return
            allowed = self._table().get(api_key)
            if allowed is None or api_version not in allowed or not is_known(api_key, api_version):
                # As a broker does: a version it never advertised cannot be answered in a layout the
                # client can read, so the connection is closed.
                self.close(f"API {api_key} v{api_version} is not offered by this proxy", api_key)
                return
            header = parse_request_header(frame)
            if self.client_id is None and header.client_id:
                self.client_id = self.log_context["client_id"] = header.client_id
            if fresh:
                self.meter.client_id(header.client_id, len(frame) + 4)
                if api_key == PRODUCE_KEY:
                    self.meter.produced(api_version, frame, header.body_offset)
            if api_key == DESCRIBE_CLUSTER and self._asks_for_controllers(frame, header.body_offset, api_version):
                self.answer(Slot(corr, api_key, api_version), DescribeClusterResponse(
                    error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                    error_message="controller endpoints are not served through the proxy"))
                return
            if self.upstream is None:  # the first request for a broker opens the connection to it
                self._start_upstream()
                assert self._held is not None
                self._held.append(frame)
                self._counted_frames.add(id(frame))
                return
            assert self.rewriter is not None
            if self._guard_holds(frame, header.body_offset, api_key, api_version, corr):
                return
            throttle = 0.0
            if self.throttler is not None and frame is not self._ids_looked_up_for:
                if api_key == FETCH_KEY and (debt := self.throttler.fetch_debt()) > 0:
                    # Kafka answers a fetch over quota at once, empty; session 0 makes the client start
                    # a new fetch session, since the broker's never saw this round.
                    slot = Slot(corr, api_key, api_version)
                    slot.throttle_until = asyncio.get_running_loop().time() + debt
                    self.outbox.append(slot)
                    self._release(slot, [response_frame(FetchResponse(throttle_time_ms=round(debt * 1000)),
                                                        api_version, corr)])
                    return
                throttle = self.throttler.on_request(api_key, len(frame))
            looked_up = frame is self._ids_looked_up_for
            try:
                parts, ctx = self.rewriter.request(frame, header, ids_looked_up=looked_up)
            except Refusal as refused:
                self.answer(Slot(corr, api_key, api_version), refused.response)
                return
            except UnknownTopicIds as unknown:
                self._look_up_topic_ids(frame, unknown.ids)
                return
            if api_key == PRODUCE_KEY and produce_acks(frame, header.body_offset, api_version) == 0:
                self.upstream.forward(parts, None)
                if self.throttler is not None:
                    self.throttler.mute(throttle)  # no response to carry it: the mute is the only signal
                return
        except (ProtocolError, IndexError, ValueError) as exc:
            self.close(f"malformed request: {exc}")
            return
        slot = Slot(corr, api_key, api_version, ctx)
        if frame is self._guarded_frame and self._guard_verdict is not None:
            slot.refused = self._guard_verdict.refused
            slot.settle = self._guard_verdict.settle
            throttle = max(throttle, self._guard_verdict.throttle)
        if throttle > 0:
            slot.throttle_until = asyncio.get_running_loop().time() + throttle
            # Read nothing more until the debt is paid. A broker reads one request per connection at a
            # time, so its mute stops the next; the proxy pipelines, and clients that keep many requests
            # in flight (librdkafka) would otherwise run far into debt, then stall for seconds.
            assert self.throttler is not None
            self.throttler.mute(throttle)
        self.outbox.append(slot)
        slot.sent = now()
        self.upstream.forward(parts, slot)
        if len(self.outbox) >= self.config.max_in_flight:
            self.gate.block("too many in flight")

    def _guard_holds(self, frame: memoryview, body_offset: int, api_key: int, version: int, corr: int) -> bool:
        """Hold a request that a guard rail must check against the tenant's use; True if it was held."""
        if self.auth is None or self.auth.principal is None or frame is self._guarded_frame:
            return False
        logged_in_as = self.auth.principal.tenant  # limits change on reload without a new login: use the current
        tenant = self.server.registry.tenants.get(logged_in_as.id, logged_in_as)
        guard = self.server.guard
        if not guard.applies(tenant.limits, api_key):
            return False
        request = decode(REQUESTS[api_key], frame[body_offset:], version)
        if guard.settled(tenant, api_key, request):
            return False
        assert self.upstream is not None
        self._held = [frame]
        self.gate.block("guard rails")
        upstream = self.upstream
        produce_rate = self.throttler.meters.effective_rate(PRODUCE) if self.throttler else None

        async def review() -> None:
            try:
                verdict = await guard.review(tenant, produce_rate, upstream, api_key, version, request)
            except (UpstreamError, ProtocolError) as exc:
                self.close(f"cannot check the tenant's limits: {exc}", api_key)
                return
            except Exception:  # a bug must cost this connection, never leave it held forever
                self.log.exception("checking API %d v%d of %s against its limits failed", api_key, version, tenant.id,
                                   extra={"api": api_name(api_key)})
                self.close("internal error while checking the tenant's limits", api_key)
                return
            held = self._held or []
            if verdict.throttle > 0:
                self.meter.tenant.throttle_seconds["topic_mutations"] += verdict.throttle
                self.meter.tenant.throttled["topic_mutations"] += 1
            if verdict.answer is not None:
                slot = Slot(corr, api_key, version)
                slot.throttle_until = asyncio.get_running_loop().time() + verdict.throttle
                self.outbox.append(slot)
                answer = response_frame(verdict.answer, version, corr)
                self.count_errors(slot, answer)
                self._release(slot, [answer])
                self._held = held[1:]
            else:
                assert verdict.request is not None
                changed = memoryview(bytes(frame[:body_offset]) + encode(verdict.request, version))
                self._counted_frames.add(id(changed))
                self._guarded_frame, self._guard_verdict = changed, verdict
                self._held = [changed, *held[1:]]
            self._release_held()
            self.gate.unblock("guard rails")
        asyncio.get_running_loop().create_task(review())
        return True

    def _look_up_topic_ids(self, frame: memoryview, ids: set[uuid.UUID]) -> None:
        """Hold this request and those after it while the broker says which topics the ids name."""
        assert self.upstream is not None
        self._held = [frame]
        self._counted_frames.add(id(frame))
        self.gate.block("looking up topic ids")
        upstream = self.upstream

        async def look_up() -> None:
            try:
                await self.server.look_up_topic_ids(upstream, ids)
            except (UpstreamError, ProtocolError) as exc:
                self.close(f"cannot look up topic ids: {exc}")
                return
            self._ids_looked_up_for = frame
            self._release_held()
            self.gate.unblock("looking up topic ids")
        asyncio.get_running_loop().create_task(look_up())

    def logged_in(self) -> None:
        assert self.auth is not None and self.auth.principal is not None
        tenant = self.auth.principal.tenant
        self.rewriter = Rewriter(tenant.namespace, self.server.topic_ids, tenant.id, tenant.allow_auto_create_topics)
        self.log_context.update(tenant=tenant.id, user=self.auth.principal.name)
        namespace, topic_ids = tenant.namespace, self.server.topic_ids

        def topic_name_of(topic_id: uuid.UUID) -> str | None:
            name = topic_ids.name_of(topic_id)
            return namespace.from_cluster(name) if name else None
        self.meter.logged_in(tenant.id, topic_name_of)
        self._counted = True
        self.log.info("%s logged in as %s of tenant %s (%s)", self.peer, self.auth.principal.name, tenant.id,
                      self.auth.principal.mechanism)
        # The broker connection opens with the first request that needs it, so a logged-in connection
        # that stays idle costs the broker nothing.

    def _asks_for_controllers(self, frame: memoryview, body_offset: int, version: int) -> bool:
        if version < 1:
            return False
        request = decode(REQUESTS[DESCRIBE_CLUSTER], frame[body_offset:], version)
        return bool(getattr(request, "endpoint_type", 1) != 1)

    def _answer_api_versions(self, version: int, corr: int) -> None:
        table = self._table()
        broker = self.upstream.broker_versions if self.upstream else self.server.broker_versions
        if version in table[API_VERSIONS_KEY]:
            self.answer(Slot(corr, API_VERSIONS_KEY, version), api_versions_response(table, broker))
        else:
            # KIP-511: a client newer than us gets a v0 answer with our ranges and picks a version from it.
            response = api_versions_response(table, None, ErrorCode.UNSUPPORTED_VERSION)
            self.answer(Slot(corr, API_VERSIONS_KEY, 0), response)

    def answer(self, slot: Slot, response: Message) -> None:
        self.outbox.append(slot)
        self.fill(slot, response)

    def fill(self, slot: Slot, response: Message) -> None:
        """Answer a slot already in the outbox."""
        frame = response_frame(response, slot.api_version, slot.client_corr)
        self.count_errors(slot, frame)
        self.meter.answered(slot.api_key, slot, len(frame))
        slot.chunks = [frame]
        self.flush()

    def count_errors(self, slot: Slot, frame: bytes) -> None:
        """Count the error codes of an answer the proxy made itself (a size-prefixed frame)."""
        body = memoryview(frame)[4:]
        self.meter.errors(slot.api_key, slot.api_version, body,
                          response_body_offset(body, response_header_version(slot.api_key, slot.api_version)))

    # -- responses ------------------------------------------------------------------------------------
    def _fill_from_upstream(self, slot: Slot, frame: memoryview) -> None:
        assert self.rewriter is not None
        key, version = slot.api_key, slot.api_version
        offset = response_body_offset(frame, response_header_version(key, version))
        if slot.settle is not None:
            slot.settle()
        self.meter.errors(key, version, frame, offset)
        self.meter.refused(key, len(slot.refused))
        ms = self._throttle_ms(slot, len(frame)) if self.throttler is not None else 0
        at = throttle_offset(key, version) if ms > 0 else None
        if ms > 0 and at is None and has_throttle_field(key, version):
            frame = rewrite_throttle_field(frame, offset, key, version, ms)
        addresses = Addresses(self.config.advertised_host, self.config.broker_port)
        body = self.rewriter.response(key, version, frame, offset, slot.ctx, addresses)
        if at is not None:
            body = overwrite_int32(body, offset - 4 + at, max(ms, read_throttle(frame, offset, key, version)))
        if slot.refused:
            body = merge_refused(key, version, body, offset - 4, slot.refused)
        size = 4 + sum(len(c) for c in body)
        chunks: list[Chunk] = [INT32.pack(size) + INT32.pack(slot.client_corr), *body]
        new_nodes = self.server.learn_brokers(addresses.seen) if addresses.seen else None
        if new_nodes is None:
            self._release(slot, chunks)
            return

        async def after_listeners() -> None:
            assert new_nodes is not None
            await new_nodes  # a client may connect to a new broker as soon as it reads this response
            self._release(slot, chunks)
        asyncio.get_running_loop().create_task(after_listeners())

    def _throttle_ms(self, slot: Slot, size: int) -> int:
        """The proxy's throttle for this response, in ms, counting a Fetch response's bytes first."""
        assert self.throttler is not None
        now = asyncio.get_running_loop().time()
        if slot.api_key == FETCH_KEY:
            slot.throttle_until = max(slot.throttle_until, now + self.throttler.on_fetch_response(size))
        return round(max(0.0, slot.throttle_until - now) * 1000)

    def _release(self, slot: Slot, chunks: list[Chunk]) -> None:
        """Send a response, applying its throttle as Kafka does for its version (see proxy.throttle)."""
        self.meter.answered(slot.api_key, slot, sum(len(c) for c in chunks))
        left = slot.throttle_until - asyncio.get_running_loop().time()
        if left > 0:
            self.log.debug("throttling API %d v%d for %.0f ms", slot.api_key, slot.api_version, left * 1000,
                           extra={"api": api_name(slot.api_key)})
        if left <= 0:
            slot.chunks = chunks
            self.flush()
        elif client_throttles(slot.api_key, slot.api_version):
            slot.chunks = chunks
            self.flush()
            if self.throttler is not None:
                self.throttler.mute(left)
        else:
            def late() -> None:
                slot.chunks = chunks
                self.flush()
            asyncio.get_running_loop().call_later(left, late)

    def flush(self) -> None:
        if self.transport is None or self._closed:
            return
        outbox = self.outbox
        while outbox and outbox[0].chunks is not None:
            self.transport.writelines(outbox.popleft().chunks or ())
        if len(outbox) < self.config.max_in_flight // 2 + 1:
            self.gate.unblock("too many in flight")
        if self._draining and not outbox:
            self.close(self._drain_reason)

    # -- closing --------------------------------------------------------------------------------------
    def drain(self, reason: str = "drained") -> None:
        """Stop reading new requests; close once every in-flight response has been written."""
        self._draining = True
        self._drain_reason = reason
        self.gate.block("draining")
        if not self.outbox:
            self.close(reason)

    def _aged_out(self) -> None:
        self._age_limit = None
        self.meter.tenant.connections_aged_out += 1
        self.drain("max_connection_age_seconds reached: the client reconnects, perhaps to another replica")
        # A response that never comes must not keep the connection past its age for long.
        asyncio.get_running_loop().call_later(self.config.shutdown_timeout, self.abort)

    def close(self, reason: str, api_key: int | None = None) -> None:
        """Close now; `api_key` names the request that caused it, for the log line."""
        if self._closed:
            return
        self._closed = True
        level = logging.DEBUG if reason in ("drained", "client closed its side") else logging.INFO
        extra = {"api": api_name(api_key)} if api_key is not None else None
        self.log.log(level, "closing connection from %s: %s", self.peer, reason, extra=extra)
        if self.transport is not None:
            self.transport.close()
        if self.upstream is not None:
            self.upstream.owner = None
            self.upstream.close()

    def abort(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()
