"""The proxy's side of SASL PLAIN and SCRAM-SHA-256/512, sans-I/O: tokens in, challenges and a principal out.

An unknown user is indistinguishable from a wrong password: SCRAM answers it with a salt derived from
the name and a secret (stable for that name, like a real user's), and PLAIN spends the same scrypt time
before failing. Every failure carries the same message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from scramp import ScramException, ScramMechanism

from tenantry.tenants.credentials import (
    SCRAM_MECHANISMS,
    PlainCredential,
    ScramCredential,
)
from tenantry.tenants.oauthbearer import MECHANISM as OAUTHBEARER
from tenantry.tenants.oauthbearer import InvalidToken, KeyFinder, TokenRules, bearer_token, verify
from tenantry.tenants.registry import Registry, Tenant, User

FAILED = "Authentication failed: Invalid username or password"
_DUMMY_PLAIN = PlainCredential.create(os.urandom(16).hex())


class AuthenticationFailed(Exception):
    """The login failed; str() is the message for the client, the same whatever the cause."""

    def __init__(self) -> None:
        super().__init__(FAILED)


@dataclass(frozen=True)
class Principal:
    tenant: Tenant
    user: User
    mechanism: str

    @property
    def name(self) -> str:
        return self.user.name


class SaslExchange:
    """One SASL exchange for one mechanism. Feed client tokens to step() until it returns a principal."""

    def __init__(self, registry: Registry, mechanism: str, secret: bytes,
                 oauth: tuple[KeyFinder, TokenRules] | None = None) -> None:
        if mechanism not in ("PLAIN", *SCRAM_MECHANISMS) and not (mechanism == OAUTHBEARER and oauth):
            raise ValueError(f"unsupported mechanism {mechanism}")
        self.registry = registry
        self.mechanism = mechanism
        self._secret = secret
        self._oauth = oauth
        self._scram = (ScramMechanism(mechanism).make_server(self._scram_keys) if mechanism in SCRAM_MECHANISMS
                       else None)
        self._username: str | None = None
        self.principal: Principal | None = None
        self.expires_at: float | None = None  # OAUTHBEARER: the login ends with the token (epoch seconds)
        self.refusal = ""  # why the login failed, for the proxy's log only

    def step(self, token: bytes) -> bytes:
        """The server's answer to a client token; raises AuthenticationFailed. Done when .principal is set."""
        if self.principal is not None:
            raise AuthenticationFailed()
        if self._oauth is not None and self.mechanism == OAUTHBEARER:
            return self._bearer(token, *self._oauth)
        if self._scram is None:
            return self._plain(token)
        try:
            if self._username is None:
                self._scram.set_client_first(token.decode("utf-8"))  # calls _scram_keys with the name
                return str(self._scram.get_server_first()).encode()
            self._scram.set_client_final(token.decode("utf-8"))
            final = str(self._scram.get_server_final()).encode()
        except (ScramException, UnicodeDecodeError, ValueError, KeyError):
            raise AuthenticationFailed() from None
        self.principal = self._principal(self._username)
        return final

    @property
    def claimed_user(self) -> str | None:
        """The user name the client gave (not yet proven), for attributing failed logins in metrics."""
        return self._username

    def _bearer(self, token: bytes, find_key: KeyFinder, rules: TokenRules) -> bytes:
        try:
            verified = verify(bearer_token(token), find_key, rules, self.registry)
        except InvalidToken as exc:
            self.refusal = str(exc)
            raise AuthenticationFailed() from None
        self._username = verified.user.name
        self.principal = Principal(verified.tenant, verified.user, OAUTHBEARER)
        self.expires_at = verified.expires_at
        return b""

    def _plain(self, token: bytes) -> bytes:
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise AuthenticationFailed()
        authzid, authcid, password = (p.decode("utf-8", errors="replace") for p in parts)
        self._username = authcid
        found = self.registry.lookup(authcid)
        credential = found[1].credentials.get("PLAIN") if found else None
        if not isinstance(credential, PlainCredential):
            _DUMMY_PLAIN.verify(password)  # same cost as a real check: timing reveals nothing
            raise AuthenticationFailed()
        if not credential.verify(password) or authzid not in ("", authcid):
            raise AuthenticationFailed()
        self.principal = self._principal(authcid)
        return b""

    def _principal(self, username: str) -> Principal:
        found = self.registry.lookup(username)
        if found is None or self.mechanism not in found[1].credentials:
            raise AuthenticationFailed()
        return Principal(found[0], found[1], self.mechanism)

    def _scram_keys(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        self._username = username
        found = self.registry.lookup(username)
        credential = found[1].credentials.get(self.mechanism) if found else None
        if isinstance(credential, ScramCredential):
            return credential.salt, credential.stored_key, credential.server_key, credential.iterations
        # Unknown user, or a mechanism the user lacks: a salt that is stable per name (keyed by a secret that
        # is the same across restarts and replicas), as long as real ones, the same iterations, and keys no
        # password matches. Nothing in the answer tells it from a real user's.
        length, iterations = self.registry.scram_shape(self.mechanism)
        salt = _invented_salt(self._secret, self.mechanism, username, length)
        return salt, os.urandom(64), os.urandom(64), iterations


def _invented_salt(secret: bytes, mechanism: str, username: str, length: int) -> bytes:
    """`length` bytes that only the holder of `secret` can compute for this name (HMAC in counter mode)."""
    out = b""
    for counter in range(-(-length // 32)):
        out += hmac.new(secret, f"{counter}:{mechanism}:{username}".encode(), hashlib.sha256).digest()
    return out[:length]
