"""One client connection: its socket, the ordered outbox of responses, and its lifecycle.

Each frame the client sends becomes an :class:`~tenantry.proxy.exchange.Exchange` that goes through the
pipeline's stages (:mod:`tenantry.proxy.pipeline`) in arrival order. While a stage waits (a suspended
exchange), the requests behind it wait too and nothing more is read. Responses leave in request
order: an exchange takes its place in the outbox when it is forwarded or answered, and the outbox is
written from its head as responses are ready. States: :mod:`tenantry.proxy.connection_state`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections import deque
from typing import TYPE_CHECKING, cast

from tenantry.protocol import FrameTooLarge, ProtocolError
from tenantry.protocol.envelope import response_frame
from tenantry.protocol.headers import peek_request_header, response_body_start
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.primitives import INT32
from tenantry.protocol.scanner import Chunk
from tenantry.proxy import certificate_login, pipeline, sni
from tenantry.proxy.broker_session import BrokerSession
from tenantry.proxy.connection_context import ConnectionContext
from tenantry.proxy.connection_state import ClientState, move
from tenantry.proxy.exchange import Exchange, now
from tenantry.proxy.flow import ReadGate
from tenantry.proxy.logs import ConnectionLog
from tenantry.proxy.metrics import api_name
from tenantry.proxy.outcomes import Answer, AnswerBytes, Forward, Outcome, Suspend
from tenantry.proxy.pipeline import RAW_SASL_STAGES, Stage, advance
from tenantry.proxy.prelogin import PRE_LOGIN_SCRATCH, PreLoginTicket
from tenantry.proxy.receiver import FrameInput
from tenantry.proxy.rewrite.rewriter import Leak
from tenantry.proxy.stages.quotas import release
from tenantry.proxy.traffic import TrafficMeter, tenant_topic_names
from tenantry.proxy.upstream import UpstreamConnection, UpstreamError
from tenantry.tenants.registry import Tenant

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.connection")
WAITING = "a stage is waiting"  # the read gate's reason while an exchange is suspended
MALFORMED = (ProtocolError, IndexError, ValueError, struct.error)
FULL_SCRATCH = 64 * 1024


class ClientConnection(asyncio.BufferedProtocol):
    """The proxy's side of one client's TCP connection."""

    def __init__(self, server: ProxyServer, node_id: int | None) -> None:
        self.server = server
        self.config = server.config
        self.node_id = node_id  # None: the bootstrap listener
        self.gate = ReadGate()
        tenants = self.config.tenants_enabled
        self.input = (FrameInput(server.prelogin.max_frame, server.prelogin.memory, self.gate, self._on_frames,
                                 PRE_LOGIN_SCRATCH) if tenants else
                      FrameInput(self.config.max_frame_bytes, server.memory, self.gate, self._on_frames))
        self.get_buffer = self.input.get_buffer  # type: ignore[method-assign]  # uvloop calls it on every read
        self._prelogin: PreLoginTicket | None = None
        self.inbox: deque[memoryview] = deque()  # frames read but not yet started through the pipeline
        self.outbox: deque[Exchange] = deque()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.log_context: dict[str, str] = {}
        self.log = ConnectionLog(log, self.log_context)
        self.meter = TrafficMeter(server.stats)
        self.state = ClientState.AUTHENTICATING if tenants else ClientState.ACTIVE
        self.broker = BrokerSession(lambda: server.open_upstream(self.node_id, self, self.meter.tenant_id or None),
                                    lambda: self.gate.unblock("connecting"), self.close, lambda: self.closed)
        self._counted = not tenants  # in the tenant's connection counts (after login)
        self._age_limit: asyncio.TimerHandle | None = None
        self._drain_reason = "drained"
        self._waiting: asyncio.Task[Outcome | None] | None = None  # the suspended exchange's stage
        self.stages, self.routes = ((pipeline.TENANT_STAGES, pipeline.TENANT_ROUTES) if tenants
                                    else (pipeline.TRANSPARENT_STAGES, pipeline.TRANSPARENT_ROUTES))
        self.done = asyncio.get_running_loop().create_future()
        self.context = ConnectionContext(server, self)

    @property
    def principal_name(self) -> str | None:
        auth = self.context.auth
        return auth.principal.name if auth and auth.principal else None

    @property
    def closed(self) -> bool:
        return self.state is ClientState.CLOSED

    # -- asyncio protocol -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.gate.attach(self.transport)
        if self.server.broker_names is not None:  # one port for all brokers: the TLS handshake named one
            self.node_id = sni.node_of(transport)
        peer = transport.get_extra_info("peername")
        self.peer = self.context.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
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
        if self.context.auth is None:  # transparent: the client's versions are the broker's, so wait for it
            self.gate.block("connecting")
            self.broker.open()
        else:
            self._prelogin = PreLoginTicket(self.server.prelogin, peer[0] if peer else "?",
                                            self.config.login_timeout_ms / 1000, self._login_timed_out)
            if self._prelogin.refusal is not None:
                self.meter.tenant.connections_refused["unauthenticated_per_ip"] += 1
                self.close(self._prelogin.refusal)
            elif self.server.principal_rules:  # an SSL listener: the certificate is the login
                certificate_login.start(self, transport, self.server.principal_rules)

    def _login_timed_out(self) -> None:
        if self.state is ClientState.AUTHENTICATING:
            self.close("no login within login_timeout_ms")

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self.input.buffer_updated(nbytes)
        except FrameTooLarge as exc:
            self.close(f"oversized request: {exc}")

    def eof_received(self) -> bool | None:
        self.close("client closed its side")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = ClientState.CLOSED
        self.input.close()
        self.inbox.clear()
        self.server.connections.discard(self)
        self.meter.closed(self._counted)
        if self._age_limit is not None:
            self._age_limit.cancel()
        if self._prelogin is not None:
            self._prelogin.release()
        self.broker.close()
        if self._waiting is not None:
            self._waiting.cancel()
        if self.context.throttler is not None:
            self.context.throttler.close()
            self.context.throttler = None
        if not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    # -- requests through the pipeline ------------------------------------------------------------------
    def _on_frames(self, frames: list[memoryview]) -> None:
        self.inbox.extend(frames)
        self._pump()

    def _pump(self) -> None:
        """Start the waiting frames through the pipeline, in order, until one of them must wait."""
        while self.inbox and self._waiting is None and self.state is not ClientState.CLOSED:
            frame = self.inbox.popleft()
            auth = self.context.auth
            if auth is not None and auth.raw_tokens:
                self._run(Exchange(frame, ApiKey.SASL_AUTHENTICATE, 0, -1, raw=True), RAW_SASL_STAGES, 0)
                continue
            try:
                api_key, api_version, corr = peek_request_header(frame)
            except ProtocolError as exc:
                self.close(f"malformed request: {exc}")
                return
            route = self.routes.get(api_key) or pipeline.route(self.stages, api_key)  # unknown: a stage refuses
            self._run(Exchange(frame, api_key, api_version, corr), route, 0)

    def _run(self, ex: Exchange, stages: tuple[Stage, ...], start: int) -> None:
        try:
            outcome, index = advance(ex, self.context, stages, start)
        except Exception as exc:
            self._failed(ex, exc)
            return
        self._act(ex, stages, index, outcome)

    def _failed(self, ex: Exchange, error: BaseException) -> None:
        """Close for a malformed request; for anything else (a bug), log it too. Never an error left unhandled."""
        if isinstance(error, MALFORMED):
            self.close(f"malformed request: {error}", ex.api_key)
            return
        self.log.error("API %d v%d failed in the proxy", ex.api_key, ex.api_version, exc_info=error,
                       extra={"api": api_name(ex.api_key)})
        self.close("internal error", ex.api_key)

    def _act(self, ex: Exchange, stages: tuple[Stage, ...], index: int, outcome: Outcome) -> None:
        if isinstance(outcome, Forward):
            self._forward(ex, outcome.expects_response)
        elif isinstance(outcome, Suspend):
            self._suspend(ex, stages, index, outcome)
        elif isinstance(outcome, Answer):
            self._answer(ex, outcome)
        elif isinstance(outcome, AnswerBytes):
            self.outbox.append(ex)
            self._release(ex, outcome.chunks)
            if outcome.drain is not None:
                self.drain(outcome.drain)
        else:
            self.close(outcome.reason, outcome.api_key)

    def _suspend(self, ex: Exchange, stages: tuple[Stage, ...], index: int, outcome: Suspend) -> None:
        """Wait for the stage's coroutine; the requests behind this one wait too, and nothing more is read."""
        self.gate.block(WAITING)
        task = asyncio.get_running_loop().create_task(outcome.until)
        self._waiting = task
        task.add_done_callback(lambda done: self._resume(ex, stages, index, done))

    def _resume(self, ex: Exchange, stages: tuple[Stage, ...], index: int, task: asyncio.Task[Outcome | None]) -> None:
        self._waiting = None
        self.gate.unblock(WAITING)
        error = None if task.cancelled() else task.exception()  # always retrieved: no "never retrieved" logs
        if self.closed or task.cancelled():
            return
        if error is not None:
            self._failed(ex, error)
        elif (outcome := task.result()) is None:
            self._run(ex, stages, index + 1)
        else:
            self._act(ex, stages, index, outcome)
        self._pump()

    def _forward(self, ex: Exchange, expects_response: bool) -> None:
        upstream = self.broker.upstream
        assert upstream is not None
        if not expects_response:
            upstream.forward(ex.parts, None)
            return
        self.outbox.append(ex)
        ex.sent = now()
        upstream.forward(ex.parts, ex)
        if len(self.outbox) >= self.config.max_in_flight:
            self.gate.block("too many in flight")

    def logged_in(self, tenant: Tenant, user: str, mechanism: str) -> None:
        self.state = move(self.state, ClientState.ACTIVE)
        self.log_context.update(tenant=tenant.id, user=user)
        self.meter.logged_in(tenant.id, tenant_topic_names(tenant.namespace, self.server.topic_ids))
        self._counted = True
        assert self._prelogin is not None
        self._prelogin.release()  # from now on, the tenant's limits
        self.input.admit_more(self.config.max_frame_bytes, self.server.memory_for(tenant.id), FULL_SCRATCH)
        self.log.info("%s logged in as %s of tenant %s (%s)", self.peer, user, tenant.id, mechanism)

    # -- the broker connection --------------------------------------------------------------------------
    @property
    def upstream(self) -> UpstreamConnection | None:
        return self.broker.upstream

    def on_reauthentication(self, running: bool) -> None:
        self.broker.reauthenticating(running)

    def on_upstream_response(self, entry: object, frame: memoryview) -> None:
        ex = cast(Exchange, entry)  # the upstream hands back what _forward gave it
        ex.received = now()
        try:
            ex.response = frame
            ex.body_offset = response_body_start(frame, ex.api_key, ex.api_version)
            for hook in reversed(ex.hooks):
                hook(ex, self.context)
        except Leak as exc:
            self.log.error("dropped a response to %s for %s: %s", self.principal_name, self.peer, exc)
            self.close("response would have leaked another tenant's name")
            return
        except MALFORMED as exc:
            self.close(f"broker response to API {ex.api_key} v{ex.api_version} is malformed: {exc}", ex.api_key)
            return
        body = ex.chunks if ex.chunks is not None else [frame[4:]]
        chunks: list[Chunk] = [INT32.pack(4 + sum(map(len, body))) + INT32.pack(ex.client_corr), *body]
        if ex.new_brokers is None and ex.before_release is None:
            self._release(ex, chunks)
        else:
            asyncio.get_running_loop().create_task(self._release_when_checked(ex, chunks))

    async def _release_when_checked(self, ex: Exchange, chunks: list[Chunk]) -> None:
        """Release once the response's new brokers have listeners and its last check passed."""
        try:
            if ex.before_release is not None:
                await ex.before_release
            if ex.new_brokers is not None:
                await cast("asyncio.Future[object]", ex.new_brokers)
        except Leak as exc:
            self.log.error("dropped a response to %s for %s: %s", self.principal_name, self.peer, exc)
            self.close("response would have leaked another tenant's topic")
            return
        except (UpstreamError, ProtocolError) as exc:
            self.close(f"cannot check a response's topic ids: {exc}", ex.api_key)
            return
        except Exception:  # a bug must cost this connection, never leave an exception unretrieved
            self.log.exception("releasing a response to API %d failed", ex.api_key, extra={"api": api_name(ex.api_key)})
            self.close("internal error", ex.api_key)
            return
        if not self.closed:
            self._release(ex, chunks)

    def on_upstream_lost(self, reason: str) -> None:
        self.close(reason)

    def on_upstream_congested(self, congested: bool) -> None:
        (self.gate.block if congested else self.gate.unblock)("broker congested")

    # -- responses ------------------------------------------------------------------------------------
    def _answer(self, ex: Exchange, answer: Answer) -> None:
        if answer.version is not None:
            ex.api_version = answer.version
        frame = response_frame(answer.response, ex.api_version, ex.client_corr)
        body = memoryview(frame)[4:]
        self.meter.errors(ex.api_key, ex.api_version, body,
                          response_body_start(body, ex.api_key, ex.api_version))
        self.outbox.append(ex)
        self._release(ex, [frame])
        if answer.drain is not None:
            self.drain(answer.drain)

    def _release(self, ex: Exchange, chunks: list[Chunk]) -> None:
        """Send a response when its throttle allows (see :func:`~tenantry.proxy.stages.quotas.release`)."""
        if not ex.raw:
            self.meter.answered(ex.api_key, ex, sum(map(len, chunks)))
        hold = release(ex, self.context) if ex.throttle_until else 0.0
        if hold <= 0:
            self._send(ex, chunks)
        else:
            asyncio.get_running_loop().call_later(hold, self._send, ex, chunks)

    def _send(self, ex: Exchange, chunks: list[Chunk]) -> None:
        ex.out = chunks
        self.flush()

    def flush(self) -> None:
        if self.transport is None or self.closed:
            return
        outbox = self.outbox
        while outbox and outbox[0].out is not None:
            self.transport.writelines(outbox.popleft().out or ())
        if len(outbox) < self.config.max_in_flight // 2 + 1:
            self.gate.unblock("too many in flight")
        if self.state is ClientState.DRAINING and not outbox:
            self.close(self._drain_reason)

    # -- closing --------------------------------------------------------------------------------------
    def drain(self, reason: str = "drained") -> None:
        """Stop reading new requests; close once every in-flight response has been written."""
        if self.closed:
            return
        self.state = move(self.state, ClientState.DRAINING)
        self._drain_reason = reason
        self.gate.block("draining")
        if not self.outbox:
            self.close(reason)

    def _aged_out(self) -> None:
        self._age_limit = None
        self.meter.tenant.connections_aged_out += 1
        self.drain("max_connection_age_seconds reached: the client reconnects, perhaps to another replica")
        # A response that never comes must not keep the connection past its age for long.
        asyncio.get_running_loop().call_later(self.config.shutdown_timeout_seconds, self.abort)

    def close(self, reason: str, api_key: int | None = None) -> None:
        """Close now; `api_key` names the request that caused it, for the log line."""
        if self.closed:
            return
        self.state = move(self.state, ClientState.CLOSED)
        level = logging.DEBUG if reason in ("drained", "client closed its side") else logging.INFO
        extra = {"api": api_name(api_key)} if api_key is not None else None
        self.log.log(level, "closing connection from %s: %s", self.peer, reason, extra=extra)
        if self.transport is not None:
            self.transport.close()
        self.broker.close()
        if self._waiting is not None:
            self._waiting.cancel()

    def abort(self) -> None:
        self.state = ClientState.CLOSED
        if self.transport is not None:
            self.transport.abort()

