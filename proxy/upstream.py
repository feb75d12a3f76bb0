"""The proxy's connection to one broker: handshake, SASL login and re-login, and in-order responses.

Every request gets a fresh correlation id on this connection, so requests the proxy makes itself
(ApiVersions, SASL, re-authentication) never collide with a client's ids. Responses come back in
request order; each one is matched to the oldest in-flight entry and handed to its owner.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, cast

from tenantry.protocol import ProtocolError, decode
from tenantry.protocol.envelope import request_frame
from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.headers import response_body_start
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.api_versions_request import ApiVersionsRequest
from tenantry.protocol.messages.api_versions_response import ApiVersionsResponse
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.protocol.primitives import INT16, INT32
from tenantry.protocol.scanner import Chunk
from tenantry.protocol.schema import Message, Versions
from tenantry.proxy.api_versions import intersect
from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.flow import ReadGate
from tenantry.proxy.memory import MemoryBudget
from tenantry.proxy.oauth_client import TokenError, TokenSource
from tenantry.proxy.receiver import FrameInput
from tenantry.proxy.sasl_client import OAuthBearerClient, SaslClient, SaslError, sasl_client
from tenantry.proxy.stats import BrokerStats

log = logging.getLogger("tenantry.upstream")
CLIENT_ID = "tenantry-proxy"
SOFTWARE_VERSION = "0.1.0"


class UpstreamError(ConnectionError):
    """The broker could not be reached, refused the proxy's login, or broke the protocol."""


class InFlight:
    """A client request forwarded upstream, waiting for its response."""

    __slots__ = ("upstream_corr",)

    def __init__(self) -> None:
        self.upstream_corr = -1


@dataclass(slots=True)
class _OwnRequest:
    upstream_corr: int
    api_key: int
    version: int
    future: asyncio.Future[Any]


class UpstreamOwner(Protocol):
    def on_upstream_response(self, entry: Any, frame: memoryview) -> None: ...

    def on_upstream_lost(self, reason: str) -> None: ...

    def on_upstream_congested(self, congested: bool) -> None: ...

    def on_reauthentication(self, running: bool) -> None: ...


OUR_API_VERSIONS = ApiVersionsRequest.VALID_VERSIONS.hi or 0


def _api_versions_request() -> ApiVersionsRequest:
    return ApiVersionsRequest(client_software_name="tenantry", client_software_version=SOFTWARE_VERSION)


class UpstreamConnection(asyncio.BufferedProtocol):
    """One authenticated connection to a broker, owned by one client connection."""

    def __init__(self, config: ProxyConfig, memory: MemoryBudget, owner: UpstreamOwner | None) -> None:
        self.config = config
        self.owner = owner
        self.pending: deque[InFlight | _OwnRequest] = deque()
        self.gate = ReadGate()
        self.input = FrameInput(config.max_frame_bytes, memory, self.gate, self._on_frames)
        self.get_buffer = self.input.get_buffer  # type: ignore[method-assign]  # uvloop calls it on every read
        self.transport: asyncio.Transport | None = None
        self.broker_versions: ApiVersionsResponse | None = None
        self.table: dict[int, Versions] = {}
        self._corr = 0
        self._reauth_timer: asyncio.TimerHandle | None = None
        self._reauth_due = False
        self.reauthenticating = False
        self._logged_in = asyncio.Event()  # clear while re-authenticating
        self._logged_in.set()
        self.closed = False
        self.broker = ""  # the metrics' label: a node id, or "bootstrap"
        self.stats: BrokerStats | None = None
        self._closed_by_proxy = False
        self.login: tuple[str, str, str] | None = None  # a tenant's broker user, instead of the service user
        self.tokens: TokenSource | None = None  # the service user's OAUTHBEARER tokens

    @classmethod
    async def open(cls, config: ProxyConfig, memory: MemoryBudget, host: str, port: int,
                   owner: UpstreamOwner | None, login: tuple[str, str, str] | None = None,
                   tls: ssl.SSLContext | None = None, tokens: TokenSource | None = None) -> UpstreamConnection:
        """Connect (over TLS with `tls`, checking the certificate against `host`), learn the broker's API versions
        and log in; raise UpstreamError on failure.

        `login` is (mechanism, user, password) for a tenant's broker user; None logs in as the service user.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(config.upstream_connect_timeout_seconds or None):
                _, conn = await loop.create_connection(lambda: cls(config, memory, owner), host, port, ssl=tls,
                                                       server_hostname=host if tls is not None else None)
                conn.login, conn.tokens = login, tokens
                await conn._handshake()
        except (OSError, TimeoutError, ProtocolError) as exc:
            timeout = config.upstream_connect_timeout_seconds
            reason = str(exc) or (f"no answer within {timeout:g} s (upstream_connect_timeout_seconds)"
                                  if isinstance(exc, TimeoutError) else type(exc).__name__)
            raise UpstreamError(f"broker {host}:{port}: {reason}") from None
        return conn

    # -- asyncio protocol -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.gate.attach(self.transport)

    def get_buffer(self, sizehint: int) -> memoryview:  # replaced per instance by the reader's own (__init__)
        return self.input.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self.input.buffer_updated(nbytes)
        except ProtocolError as exc:
            self._fail(f"broker sent a malformed response: {exc}")

    def _on_frames(self, frames: list[memoryview]) -> None:
        for frame in frames:
            if self.closed:
                return
            self._on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._logged_in.set()  # waiters go on, and find the connection closed
        self.input.close()
        if self._reauth_timer is not None:
            self._reauth_timer.cancel()
        for entry in self.pending:
            if isinstance(entry, _OwnRequest) and not entry.future.done():
                entry.future.set_exception(UpstreamError("broker closed the connection"))
        self.pending.clear()
        if self.stats is not None and not self._closed_by_proxy:
            self.stats.errors["lost"] += 1
        if self.owner is not None:
            self.owner.on_upstream_lost(f"broker closed the connection ({exc})" if exc else
                                        "broker closed the connection")

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.on_upstream_congested(True)

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.on_upstream_congested(False)

    # -- sending --------------------------------------------------------------------------------------
    def _next_corr(self) -> int:
        self._corr = (self._corr + 1) & 0x7FFFFFFF
        return self._corr

    def forward(self, parts: list[Chunk], entry: InFlight | None) -> None:
        """Send a client's request (its frame without size prefix, as chunks) under a fresh correlation id.

        `entry` is None for requests that get no response (Produce with acks=0).
        """
        assert self.transport is not None
        corr = self._next_corr()
        if entry is not None:
            entry.upstream_corr = corr
            self.pending.append(entry)
        first = parts[0]
        size = sum(map(len, parts))
        head = INT32.pack(size) + bytes(first[:4]) + INT32.pack(corr)
        # The rest goes out as slices of what was received: record batches are never copied here.
        self.transport.writelines((head, first[8:], *parts[1:]))

    async def request(self, request: Message, version: int) -> Any:
        """Send a request of the proxy's own and wait for its decoded response.

        While the proxy re-authenticates (KIP-368), the request waits: nothing may go between SASL requests.
        """
        while self.reauthenticating and not self.closed:
            await self._logged_in.wait()
        return await self._request(request, version)

    async def _request(self, request: Message, version: int) -> Any:
        assert self.transport is not None and request.API_KEY is not None
        if self.closed:
            raise UpstreamError("broker connection is closed")
        corr = self._next_corr()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append(_OwnRequest(corr, request.API_KEY, version, future))
        self.transport.write(request_frame(request, version, corr, CLIENT_ID))
        return await future

    # -- receiving ------------------------------------------------------------------------------------
    def _on_frame(self, frame: memoryview) -> None:
        if len(frame) < 4 or not self.pending:
            raise ProtocolError("response without a request in flight")
        corr = INT32.unpack_from(frame, 0)[0]
        entry = self.pending.popleft()
        if entry.upstream_corr != corr:
            raise ProtocolError(f"response correlation id {corr}, expected {entry.upstream_corr}")
        if isinstance(entry, _OwnRequest):
            self._resolve(entry, frame)
        elif self.owner is not None:
            self.owner.on_upstream_response(entry, frame)
        if self._reauth_due and not self.pending:
            self._reauth_due = False
            asyncio.get_running_loop().create_task(self._reauthenticate())

    @staticmethod
    def _resolve(entry: _OwnRequest, frame: memoryview) -> None:
        if entry.future.done():  # its waiter was cancelled (shutdown, a client gone): nobody to tell
            return
        offset = response_body_start(frame, entry.api_key, entry.version)
        version = entry.version
        if (entry.api_key == ApiKey.API_VERSIONS and len(frame) >= offset + 2
                and INT16.unpack_from(frame, offset)[0] == ErrorCode.UNSUPPORTED_VERSION):
            version = 0  # KIP-511: a broker older than the request answers in v0, listing what it supports
        try:
            entry.future.set_result(decode(RESPONSES[entry.api_key], frame[offset:], version))
        except ProtocolError as exc:
            entry.future.set_exception(exc)

    # -- handshake and SASL ---------------------------------------------------------------------------
    async def _handshake(self) -> None:
        # The newest version both sides speak: Kafka 4 leaves features whose minimum is 0 out of v3 answers.
        version = OUR_API_VERSIONS
        versions: ApiVersionsResponse = await self._request(_api_versions_request(), version)
        if versions.error_code == ErrorCode.UNSUPPORTED_VERSION:
            theirs = next((a.max_version for a in versions.api_keys if a.api_key == ApiKey.API_VERSIONS), 0)
            version = min(version, theirs)
            versions = await self._request(_api_versions_request(), version)
        if versions.error_code:
            raise UpstreamError(f"broker refused ApiVersions v{version} (error {versions.error_code})")
        self.broker_versions = versions
        self.table = intersect(versions)
        if self.config.upstream_sasl:
            await self._authenticate()

    async def _authenticate(self) -> None:
        mechanism, user, password = self.login or (self.config.upstream_sasl_mechanism,
                                                   self.config.upstream_sasl_username,
                                                   self.config.upstream_sasl_password)
        handshake = await self._request(SaslHandshakeRequest(mechanism=mechanism), 1)
        if handshake.error_code:
            raise UpstreamError(f"broker does not enable SASL mechanism {mechanism} "
                                f"(it offers {', '.join(handshake.mechanisms)})")
        client: SaslClient
        if mechanism == "OAUTHBEARER":
            assert self.tokens is not None, "OAUTHBEARER without a token source"
            try:
                client = OAuthBearerClient(await self.tokens.token())
            except TokenError as exc:
                raise UpstreamError(str(exc)) from None
        else:
            client = sasl_client(mechanism, user, password)
        token: bytes | None = client.first_message()
        response = None
        while token is not None:
            response = await self._request(SaslAuthenticateRequest(auth_bytes=token), 2)
            if response.error_code:
                raise UpstreamError(f"broker refused the proxy's login as {user}: "
                                    f"{response.error_message or response.error_code}")
            try:
                token = client.next_message(response.auth_bytes)
            except SaslError as exc:
                raise UpstreamError(f"login as {user} failed: {exc}") from None
        lifetime_ms = response.session_lifetime_ms if response is not None else 0
        if lifetime_ms > 0:
            # KIP-368: log in again before the broker's session expires, at a random 85-95% of it so a
            # fleet of connections does not re-authenticate at the same moment.
            delay = lifetime_ms / 1000 * random.uniform(0.85, 0.95)
            self._reauth_timer = asyncio.get_running_loop().call_later(delay, self._reauth_timer_fired)

    def _reauth_timer_fired(self) -> None:
        self._reauth_timer = None
        if self.closed:
            return
        self.reauthenticating = True
        self._logged_in.clear()
        if self.owner is not None:
            self.owner.on_reauthentication(True)
        if self.pending:
            self._reauth_due = True  # start once in-flight responses are back
        else:
            asyncio.get_running_loop().create_task(self._reauthenticate())

    async def _reauthenticate(self) -> None:
        try:
            await self._authenticate()
        except (UpstreamError, ProtocolError) as exc:
            self._fail(f"re-authentication failed: {exc}")
            return
        log.debug("re-authenticated to the broker")
        self.reauthenticating = False
        self._logged_in.set()
        if self.owner is not None:
            self.owner.on_reauthentication(False)

    # -- closing --------------------------------------------------------------------------------------
    def _fail(self, reason: str) -> None:
        log.warning("closing broker connection: %s", reason)
        if self.stats is not None:
            self.stats.errors["failed"] += 1
        self.close()

    def pause_reading(self) -> None:
        self.gate.block("client congested")

    def resume_reading(self) -> None:
        self.gate.unblock("client congested")

    def close(self) -> None:
        self._closed_by_proxy = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
