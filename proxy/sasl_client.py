"""Client side of SASL PLAIN and SCRAM-SHA-256/512, for the proxy's own logins to upstream brokers."""

from __future__ import annotations

from typing import Protocol

from scramp import ScramClient


class SaslClient(Protocol):
    mechanism: str

    def first_message(self) -> bytes: ...

    def next_message(self, server_message: bytes) -> bytes | None:
        """The reply to a server message, or None when the exchange is complete."""


class PlainClient:
    def __init__(self, username: str, password: str) -> None:
        self.mechanism = "PLAIN"
        self._token = b"\0" + username.encode() + b"\0" + password.encode()

    def first_message(self) -> bytes:
        return self._token

    def next_message(self, server_message: bytes) -> bytes | None:
        return None


class ScramSaslClient:
    def __init__(self, mechanism: str, username: str, password: str) -> None:
        self.mechanism = mechanism
        self._scram = ScramClient([mechanism], username, password)
        self._step = 0

    def first_message(self) -> bytes:
        return str(self._scram.get_client_first()).encode()

    def next_message(self, server_message: bytes) -> bytes | None:
        self._step += 1
        if self._step == 1:
            self._scram.set_server_first(server_message.decode())
            return str(self._scram.get_client_final()).encode()
        self._scram.set_server_final(server_message.decode())  # verifies the server's signature
        return None


def sasl_client(mechanism: str, username: str, password: str) -> SaslClient:
    if mechanism == "PLAIN":
        return PlainClient(username, password)
    return ScramSaslClient(mechanism, username, password)
