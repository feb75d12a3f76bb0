"""Client side of SASL PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER, for the proxy's own logins to upstream brokers."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from typing import Protocol


class SaslClient(Protocol):
    mechanism: str

    def first_message(self) -> bytes: ...

    def next_message(self, server_message: bytes) -> bytes | None:
        """The reply to a server message, or None when the exchange is complete."""


class OAuthBearerClient:
    """RFC 7628's client: one message with the bearer token; the broker's answer ends the exchange."""

    def __init__(self, token: str) -> None:
        self.mechanism = "OAUTHBEARER"
        self._token = token

    def first_message(self) -> bytes:
        return f"n,,\x01auth=Bearer {self._token}\x01\x01".encode()

    def next_message(self, server_message: bytes) -> bytes | None:
        if server_message:  # an error challenge ({"status": "invalid_token"}): the broker refused the token
            raise SaslError(f"the broker refused the token: {server_message.decode(errors='replace')}")
        return None


class PlainClient:
    def __init__(self, username: str, password: str) -> None:
        self.mechanism = "PLAIN"
        self._token = b"\0" + username.encode() + b"\0" + password.encode()

    def first_message(self) -> bytes:
        return self._token

    def next_message(self, server_message: bytes) -> bytes | None:
        return None


class ScramSaslClient:
    """RFC 5802's client side, reusing the salted password across logins.

    scramp (which checks client logins) derives the salted password on every login: PBKDF2 with the
    broker's 4,096 iterations is 2-5 ms of CPU. The proxy opens an upstream connection for each client
    connection, so a storm of 2,000 logins spent ~9 s of CPU on it and timed out upstream connects. The
    RFC allows caching it, since a server offers the same salt and count on each login of a user.
    """

    def __init__(self, mechanism: str, username: str, password: str) -> None:
        self.mechanism = mechanism
        self._hash = _SCRAM_HASHES[mechanism]
        self._password = password
        self._nonce = secrets.token_urlsafe(24)
        self._client_first_bare = f"n={_sasl_name(username)},r={self._nonce}"
        self._server_signature: bytes | None = None

    def first_message(self) -> bytes:
        return f"n,,{self._client_first_bare}".encode()

    def next_message(self, server_message: bytes) -> bytes | None:
        if self._server_signature is None:
            return self._client_final(server_message.decode())
        self._check_server_final(server_message.decode())
        return None

    def _client_final(self, server_first: str) -> bytes:
        fields = _fields(server_first)
        if "e" in fields:
            raise SaslError(f"the broker refused the login: {fields['e']}")
        nonce = fields.get("r", "")
        try:
            salt, iterations = base64.b64decode(fields["s"], validate=True), int(fields["i"])
        except (KeyError, ValueError, binascii.Error):
            raise SaslError(f"malformed SCRAM server-first message: {server_first!r}") from None
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce) or iterations < 1:
            raise SaslError(f"SCRAM server-first message does not continue this login: {server_first!r}")
        salted = salted_password(self._hash, self._password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", self._hash)
        without_proof = f"c=biws,r={nonce}"  # biws: base64 of the "n,," header, no channel binding
        auth_message = f"{self._client_first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(hashlib.new(self._hash, client_key).digest(), auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = hmac.digest(hmac.digest(salted, b"Server Key", self._hash), auth_message,
                                             self._hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def _check_server_final(self, server_final: str) -> None:
        fields = _fields(server_final)
        if "e" in fields:
            raise SaslError(f"the broker refused the login: {fields['e']}")
        try:
            verifier = base64.b64decode(fields["v"], validate=True)
        except (KeyError, binascii.Error):
            raise SaslError(f"malformed SCRAM server-final message: {server_final!r}") from None
        assert self._server_signature is not None
        if not hmac.compare_digest(verifier, self._server_signature):
            raise SaslError("the broker's SCRAM signature is wrong: it does not know this user's password")


class SaslError(Exception):
    """The upstream SASL exchange cannot go on."""


_SCRAM_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


@functools.lru_cache(maxsize=8)
def salted_password(hash_name: str, password: str, salt: bytes, iterations: int) -> bytes:
    """Hi() of RFC 5802: one PBKDF2 per (password, salt, count), however many logins use it."""
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


def _sasl_name(username: str) -> str:
    return username.replace("=", "=3D").replace(",", "=2C")


def _fields(message: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.split(",") if "=" in part)


def sasl_client(mechanism: str, username: str, password: str) -> SaslClient:
    if mechanism == "PLAIN":
        return PlainClient(username, password)
    return ScramSaslClient(mechanism, username, password)
