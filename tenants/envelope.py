"""Envelope encryption of record payloads, per tenant and topic (the sans-I/O core of issue 18).

Each (tenant, topic) encrypts with a data key of its own, AES-256-GCM, replaced after `max_age` seconds
or `max_records` records (far below GCM's limit for random 96-bit nonces). The data key goes out
wrapped by the tenant's KEK (:mod:`.keystore`), with its id, beside every ciphertext, so any proxy with
the key store can decrypt; unwrapped keys are cached for `cache_seconds` at most. The topic and the
tenant are associated data: a ciphertext moved to another topic or tenant does not decrypt.

The record batch rewriting that uses this (compression, CRCs, producer state) is not built yet.
"""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenantry.tenants.keystore import KEY_BYTES, NONCE_BYTES, KeyStore, KeyStoreError, WrappedKey

MAGIC = b"TEV1"  # version of the envelope layout below
_HEAD = struct.Struct(">4sH")  # magic, length of the KEK id


class DecryptError(Exception):
    """An envelope that cannot be opened: never returned as plaintext or garbage."""


@dataclass
class _DataKey:
    key: bytes
    wrapped: WrappedKey
    created: float
    records: int = 0


@dataclass
class Envelopes:
    keys: KeyStore
    max_age: float = 3600.0
    max_records: int = 1 << 24
    cache_seconds: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _current: dict[tuple[str, str], _DataKey] = field(default_factory=dict)
    _unwrapped: dict[tuple[str, bytes], tuple[bytes, float]] = field(default_factory=dict)

    def _data_key(self, tenant_id: str, topic: str) -> _DataKey:
        now = self.clock()
        current = self._current.get((tenant_id, topic))
        if current is None or current.records >= self.max_records or now - current.created >= self.max_age:
            key = secrets.token_bytes(KEY_BYTES)
            current = self._current[(tenant_id, topic)] = _DataKey(key, self.keys.wrap(tenant_id, key), now)
        current.records += 1
        return current

    def seal(self, tenant_id: str, topic: str, plaintext: bytes) -> bytes:
        """MAGIC, the wrapped data key (KEK id and blob), a nonce and the AES-GCM ciphertext with its tag."""
        data_key = self._data_key(tenant_id, topic)
        nonce = secrets.token_bytes(NONCE_BYTES)
        kek_id = data_key.wrapped.kek_id.encode()
        blob = data_key.wrapped.blob
        head = _HEAD.pack(MAGIC, len(kek_id)) + kek_id + struct.pack(">H", len(blob)) + blob
        return head + nonce + AESGCM(data_key.key).encrypt(nonce, plaintext, _aad(tenant_id, topic, head))

    def open(self, tenant_id: str, topic: str, envelope: bytes) -> bytes:
        try:
            magic, id_length = _HEAD.unpack_from(envelope)
            at = _HEAD.size
            kek_id = envelope[at:at + id_length].decode()
            at += id_length
            (blob_length,) = struct.unpack_from(">H", envelope, at)
            at += 2
            blob = envelope[at:at + blob_length]
            at += blob_length
            head, nonce, sealed = envelope[:at], envelope[at:at + NONCE_BYTES], envelope[at + NONCE_BYTES:]
        except (struct.error, UnicodeDecodeError) as exc:
            raise DecryptError(f"not an envelope ({exc})") from None
        if magic != MAGIC or len(blob) != blob_length or len(nonce) != NONCE_BYTES:
            raise DecryptError("not an envelope of this version, or truncated")
        key = self._unwrap(tenant_id, WrappedKey(kek_id, bytes(blob)))
        try:
            return AESGCM(key).decrypt(nonce, sealed, _aad(tenant_id, topic, head))
        except InvalidTag:
            raise DecryptError(f"record of {topic!r} fails authentication (tampered, or another topic's)") from None

    def _unwrap(self, tenant_id: str, wrapped: WrappedKey) -> bytes:
        now = self.clock()
        cached = self._unwrapped.get((tenant_id, wrapped.blob))
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            key = self.keys.unwrap(tenant_id, wrapped)
        except KeyStoreError as exc:
            raise DecryptError(str(exc)) from None
        self._unwrapped = {k: v for k, v in self._unwrapped.items() if v[1] > now}  # the expired go
        self._unwrapped[(tenant_id, wrapped.blob)] = (key, now + self.cache_seconds)
        return key


def _aad(tenant_id: str, topic: str, head: bytes) -> bytes:
    return b"tenantry-record\0" + tenant_id.encode() + b"\0" + topic.encode() + b"\0" + head
