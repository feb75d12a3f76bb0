"""Stored credentials: SCRAM salted keys and a slow salted hash for PLAIN. Never a password.

SCRAM (RFC 5802/7677) stores salt, StoredKey, ServerKey and the iteration count, exactly what a
Kafka broker keeps. PLAIN must check a password it receives in clear, so it stores an scrypt hash
(n=2**14, r=8, p=1) with a random salt and compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from scramp import ScramMechanism

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
MECHANISMS = ("PLAIN", *SCRAM_MECHANISMS)
SCRAM_ITERATIONS = 8192  # Kafka requires at least 4096
DEFAULT_SALT_BYTES = 32  # what scramp gives a new credential
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


@dataclass(frozen=True)
class ScramCredential:
    mechanism: str
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    @classmethod
    def create(cls, mechanism: str, password: str, iterations: int = SCRAM_ITERATIONS) -> ScramCredential:
        salt, stored_key, server_key, count = ScramMechanism(mechanism).make_auth_info(
            password, iteration_count=iterations)
        return cls(mechanism, bytes(salt), bytes(stored_key), bytes(server_key), int(count))

    def to_dict(self) -> dict[str, Any]:
        return {"salt": _b64(self.salt), "stored_key": _b64(self.stored_key),
                "server_key": _b64(self.server_key), "iterations": self.iterations}

    @classmethod
    def from_dict(cls, mechanism: str, data: dict[str, Any]) -> ScramCredential:
        iterations = int(data["iterations"])
        if iterations < 4096:
            raise ValueError(f"{mechanism} iterations must be at least 4096, got {iterations}")
        return cls(mechanism, _unb64(data["salt"]), _unb64(data["stored_key"]), _unb64(data["server_key"]),
                   iterations)


@dataclass(frozen=True)
class PlainCredential:
    salt: bytes
    hash: bytes

    @classmethod
    def create(cls, password: str) -> PlainCredential:
        salt = os.urandom(16)
        return cls(salt, _scrypt(password, salt))

    def verify(self, password: str) -> bool:
        return hmac.compare_digest(_scrypt(password, self.salt), self.hash)

    def to_dict(self) -> dict[str, Any]:
        return {"scrypt_salt": _b64(self.salt), "scrypt_hash": _b64(self.hash)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlainCredential:
        return cls(_unb64(data["scrypt_salt"]), _unb64(data["scrypt_hash"]))


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)


Credential = ScramCredential | PlainCredential


def create_credential(mechanism: str, password: str) -> Credential:
    if mechanism == "PLAIN":
        return PlainCredential.create(password)
    if mechanism in SCRAM_MECHANISMS:
        return ScramCredential.create(mechanism, password)
    raise ValueError(f"unknown mechanism {mechanism!r}; use one of {', '.join(MECHANISMS)}")
