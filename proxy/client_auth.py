"""SASL between a client and the proxy: which requests are allowed when, and the session's lifetime.

::

    HANDSHAKE --SaslHandshake(mechanism ok)--> AUTHENTICATING --SaslAuthenticate(done)--> AUTHENTICATED
        ^                                                                                   |
        +---------------- SaslHandshake again (KIP-368 re-authentication) ------------------+

Before AUTHENTICATED only ApiVersions and SASL are served. A re-authentication must keep the
principal and the mechanism. Once the session lifetime has passed, any request but SASL closes the
connection, as a broker does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenantry.tenants.auth import AuthenticationFailed, Principal, SaslExchange
from tenantry.tenants.oauthbearer import KeyFinder, TokenRules
from tenantry.tenants.registry import Registry

HANDSHAKE, AUTHENTICATING, AUTHENTICATED = "handshake", "authenticating", "authenticated"


class IllegalSaslState(Exception):
    """A SASL request out of order (Kafka's ILLEGAL_SASL_STATE)."""


class ClientAuth:
    def __init__(self, registry: Callable[[], Registry], mechanisms: list[str], lifetime_ms: int, secret: bytes,
                 clock: Callable[[], float] = time.monotonic, oauth: tuple[KeyFinder, TokenRules] | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._oauth = oauth
        self._wall = wall
        self.refusal = ""  # why the last login failed, for the proxy's log (the client is told less)
        self.mechanisms = mechanisms
        self.lifetime_ms = lifetime_ms
        self._secret = secret
        self._clock = clock
        self.state = HANDSHAKE
        self.principal: Principal | None = None
        self._exchange: SaslExchange | None = None
        self._expires_at: float | None = None
        self.mechanism = ""
        self.claimed_user: str | None = None  # the last exchange's user name, proven or not
        self.raw_tokens = False  # after SaslHandshake v0, frames are bare SASL tokens until login (KIP-152)

    @property
    def authenticated(self) -> bool:
        return self.principal is not None

    def certificate(self, principal: Principal) -> None:
        """Logged in by the client's TLS certificate (an SSL listener): no SASL, and no expiry but the TLS
        session's own."""
        self.principal = principal
        self.mechanism = principal.mechanism
        self.state = AUTHENTICATED

    def handshake(self, mechanism: str) -> bool:
        """Start an exchange; False if the mechanism is not enabled (the caller answers and closes)."""
        if self.state == AUTHENTICATING:
            raise IllegalSaslState("a SASL exchange is already in progress")
        if mechanism not in self.mechanisms:
            return False
        if self.principal is not None and mechanism != self.principal.mechanism:
            raise IllegalSaslState("re-authentication must use the same mechanism")
        self._exchange = SaslExchange(self._registry(), mechanism, self._secret, self._oauth)
        self.mechanism = mechanism
        self.state = AUTHENTICATING
        return True

    def authenticate(self, token: bytes) -> bytes:
        """The server's SASL answer; raises AuthenticationFailed or IllegalSaslState."""
        if self.state != AUTHENTICATING or self._exchange is None:
            raise IllegalSaslState("SaslAuthenticate without SaslHandshake")
        exchange = self._exchange
        try:
            answer = exchange.step(token)
        finally:
            self.claimed_user, self.refusal = exchange.claimed_user, exchange.refusal
        done = exchange.principal
        if done is not None:
            if self.principal is not None and _identity(done) != _identity(self.principal):
                self.refusal = "a re-authentication cannot switch principal (KIP-368)"
                raise AuthenticationFailed()
            self.principal = done
            self.state = AUTHENTICATED
            self._exchange = None
            # The session ends with the configured lifetime, or with an OAUTHBEARER token, whichever is first.
            lifetimes = [self.lifetime_ms / 1000] if self.lifetime_ms > 0 else []
            if exchange.expires_at is not None:
                lifetimes.append(max(exchange.expires_at - self._wall(), 0.0))
            self._expires_at = self._clock() + min(lifetimes) if lifetimes else None
        return answer

    def session_lifetime_ms(self) -> int:
        if self._expires_at is None:
            return 0
        return max(int((self._expires_at - self._clock()) * 1000), 0)

    def expired(self) -> bool:
        return self._expires_at is not None and self._clock() >= self._expires_at


def _identity(principal: Principal) -> tuple[str, str, str]:
    return principal.tenant.id, principal.name, principal.mechanism
