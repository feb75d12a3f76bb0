"""A client connection's login: SASL at the proxy, then admission against its tenant's connection limits.

:class:`~tenantry.proxy.client_auth.ClientAuth` holds the SASL state machine; this drives it for one
connection. Answers keep their place in the connection's response order, tokens are checked in a
worker thread, a failed login is answered only after a delay, and a successful one is counted against
the tenant's max_connections and connections_per_sec before it is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from tenantry.protocol import ErrorCode, decode
from tenantry.protocol.envelope import response_frame
from tenantry.protocol.headers import parse_request_header
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_authenticate_response import SaslAuthenticateResponse
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.protocol.messages.sasl_handshake_response import SaslHandshakeResponse
from tenantry.protocol.primitives import INT32
from tenantry.protocol.schema import Message, Versions
from tenantry.proxy.api_versions import SASL_AUTHENTICATE, SASL_HANDSHAKE
from tenantry.proxy.client_auth import AUTHENTICATED, ClientAuth, IllegalSaslState
from tenantry.proxy.enforcement import Throttler
from tenantry.proxy.slot import Slot
from tenantry.tenants.auth import AuthenticationFailed
from tenantry.tenants.quotas import CONNECTIONS

if TYPE_CHECKING:
    from tenantry.proxy.connection import ClientConnection

SASL_VERSIONS = {SASL_HANDSHAKE: Versions(0, 1), SASL_AUTHENTICATE: Versions(0, 2)}


class ClientLogin:
    def __init__(self, conn: ClientConnection, auth: ClientAuth) -> None:
        self.conn = conn
        self.auth = auth
        self.raw = False  # after SaslHandshake v0, frames are bare SASL tokens (KIP-152)

    def request(self, frame: memoryview, api_key: int, version: int, corr: int) -> bool:
        """Serve SASL and refuse what authentication does not allow; True if the request was consumed."""
        assert self.auth is not None
        if api_key in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
            if version not in SASL_VERSIONS[api_key]:
                self.conn.close(f"SASL API {api_key} v{version} is not supported", api_key)
                return True
            header = parse_request_header(frame)
            slot = Slot(corr, api_key, version)
            body = frame[header.body_offset:]
            if api_key == SASL_HANDSHAKE:
                self._handshake(slot, decode(SaslHandshakeRequest, body, version).mechanism)
            else:
                self._authenticate(slot, bytes(decode(SaslAuthenticateRequest, body, version).auth_bytes))
            return True
        if not self.auth.authenticated:
            self.conn.close(f"API {api_key} before authentication", api_key)
            return True
        if self.auth.expired():
            self.conn.close("SASL session expired without re-authentication")
            return True
        return False

    def _handshake(self, slot: Slot, mechanism: str) -> None:
        assert self.auth is not None
        mechanisms = list(self.auth.mechanisms)
        try:
            accepted = self.auth.handshake(mechanism)
        except IllegalSaslState as exc:
            self.conn.answer(slot, SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE,
                                                         mechanisms=mechanisms))
            self.conn.drain(f"SASL: {exc}")
            return
        if not accepted:
            self.conn.answer(slot, SaslHandshakeResponse(error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM,
                                                     mechanisms=mechanisms))
            self.conn.drain(f"SASL mechanism {mechanism!r} is not enabled")
            return
        self.conn.answer(slot, SaslHandshakeResponse(error_code=0, mechanisms=mechanisms))
        self.raw = slot.api_version == 0  # KIP-152: v0 is followed by bare tokens

    def _authenticate_off_loop(self, token: bytes, then: Callable[[bytes | Exception], None]) -> None:
        """Check a SASL token in a worker thread: PLAIN's scrypt takes ~50 ms, which a flood of logins
        would otherwise take from every other connection. Requests arriving meanwhile are held."""
        assert self.auth is not None
        self.conn.hold()
        self.conn.gate.block("authenticating")
        future = asyncio.get_running_loop().run_in_executor(None, self.auth.authenticate, token)

        def done(f: asyncio.Future[bytes]) -> None:
            self.conn.gate.unblock("authenticating")
            if self.conn.closed:
                return
            held = self.conn.take_held()
            exc = f.exception()
            then(f.result() if exc is None else exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            self.conn.replay(held)  # in order, behind the answer (held again if the broker connection is opening)
        future.add_done_callback(done)

    def _authenticate(self, slot: Slot, token: bytes) -> None:
        assert self.auth is not None
        first_login = not self.auth.authenticated
        self.conn.outbox.append(slot)  # its place in the response order, filled when the check is done
        self._authenticate_off_loop(token, lambda result: self._authenticated(slot, result, first_login))

    def _authenticated(self, slot: Slot, result: bytes | Exception, first_login: bool) -> None:
        assert self.auth is not None
        if isinstance(result, IllegalSaslState):
            self.conn.fill(slot, SaslAuthenticateResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE,
                                                      error_message=str(result)))
            self.conn.drain(f"SASL: {result}")
            return
        self._count(result)
        if isinstance(result, AuthenticationFailed):
            self._fail(slot, SaslAuthenticateResponse(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                                                            error_message=str(result)))
            return
        if isinstance(result, Exception):
            self._broken(result)
            return
        success = SaslAuthenticateResponse(error_code=0, auth_bytes=result,
                                           session_lifetime_ms=self.auth.session_lifetime_ms())
        if first_login and self.auth.authenticated:
            self._admit(lambda: self.conn.fill(slot, success))
            return
        self.conn.fill(slot, success)
        if self.auth.state == "authenticated" and self.auth.principal is not None:
            self.conn.log.info("%s re-authenticated as %s", self.conn.peer, self.auth.principal.name)

    def raw_token(self, frame: memoryview) -> None:
        assert self.auth is not None
        slot = Slot(-1, SASL_AUTHENTICATE, 0)
        self.conn.outbox.append(slot)
        self._authenticate_off_loop(bytes(frame), lambda result: self._raw_authenticated(slot, result))

    def _raw_authenticated(self, slot: Slot, result: bytes | Exception) -> None:
        assert self.auth is not None
        self._count(result)
        if isinstance(result, (AuthenticationFailed, IllegalSaslState)):
            self._fail(slot, None)  # v0 has no error response: the delay, then the close
            return
        if isinstance(result, Exception):
            self._broken(result)
            return
        answer = result

        def send() -> None:
            slot.chunks = [INT32.pack(len(answer)) + answer]
            self.conn.flush()
        if self.auth.authenticated:
            self.raw = False
            self._admit(send)
        else:
            send()

    def _admit(self, send_success: Callable[[], None]) -> None:
        """Count a login against its tenant's connection limits; answer it (after any wait) or refuse it.

        A refused connection is closed without an answer: clients treat that as a transient failure
        and reconnect with backoff, whereas a SASL error would be fatal to them.
        """
        assert self.auth is not None and self.auth.principal is not None
        principal = self.auth.principal
        quotas = self.conn.server.quotas
        meters = quotas.for_tenant(principal.tenant)
        tenant_stats = self.conn.meter.stats.tenant(principal.tenant.id)
        refusal = meters.open_connection(principal.name)
        if refusal is not None:
            tenant_stats.connections_refused["max_connections"] += 1
            self.conn.log.warning("refused a connection of %s (tenant %s) from %s: %s", principal.name,
                                  principal.tenant.id, self.conn.peer, refusal)
            self.conn.close(f"connection limit: {refusal}")
            return
        self.conn.throttler = Throttler(meters, principal.name, self.conn.gate, quotas.max_delay, tenant_stats)
        wait = meters.record(CONNECTIONS, principal.name, 1)
        if wait > quotas.max_delay:
            tenant_stats.connections_refused["connections_per_sec"] += 1
            self.conn.log.warning("refused a connection of %s (tenant %s) from %s: connections_per_sec exceeded "
                                  "by %.1f s", principal.name, principal.tenant.id, self.conn.peer, wait)
            self.conn.close("connection rate exceeded")
            return

        def proceed() -> None:
            if not self.conn.closed:
                send_success()
                self.conn.logged_in()
        if wait > 0:
            tenant_stats.throttle_seconds[CONNECTIONS] += wait
            tenant_stats.throttled[CONNECTIONS] += 1
            asyncio.get_running_loop().call_later(wait, proceed)
        else:
            proceed()

    def _count(self, result: bytes | Exception) -> None:
        """Count a finished SASL exchange (or a failed step) by mechanism, under the user's tenant if known."""
        assert self.auth is not None
        if isinstance(result, bytes) and self.auth.state != AUTHENTICATED:
            return  # a SCRAM round in the middle of the exchange
        outcome = "success" if isinstance(result, bytes) else "failure"
        tenant_id = ""
        if self.auth.principal is not None:
            tenant_id = self.auth.principal.tenant.id
        elif self.auth.claimed_user and (found := self.conn.server.registry.lookup(self.auth.claimed_user)):
            tenant_id = found[0].id
        self.conn.meter.stats.tenant(tenant_id).authentications[(self.auth.mechanism, outcome)] += 1

    def _broken(self, exc: Exception) -> None:
        self.conn.log.error("checking a SASL token from %s failed unexpectedly: %r", self.conn.peer, exc)
        self.conn.close("internal error during login")

    def _fail(self, slot: Slot, response: Message | None) -> None:
        """Answer a failed login only after a delay, then close: guessing passwords costs time."""
        self.conn.log.info("failed login from %s", self.conn.peer)
        self.conn.gate.block("login failed")

        def answer() -> None:
            slot.chunks = []
            if response is not None:
                frame = response_frame(response, slot.api_version, slot.client_corr)
                self.conn.count_errors(slot, frame)
                slot.chunks = [frame]
            self.conn.flush()
            self.conn.drain("login failed")
        asyncio.get_running_loop().call_later(self.conn.config.auth_failure_delay_ms / 1000, answer)
