"""Envelope encryption of record payloads, per tenant and topic (the sans-I/O core of issue 18).

Each (tenant, topic) encrypts with a data key of its own, AES-256-GCM, replaced after `max_age` seconds
or `max_records` records (far below GCM's limit for random 96-bit nonces). The data key goes out
wrapped by the tenant's KEK (:mod:`.keystore`), with its id, beside every ciphertext, so any proxy with
the key store can decrypt; unwrapped keys are cached for `cache_seconds` at most. The topic and the
tenant are associated data: a ciphertext moved to another topic or tenant does not decrypt.

Nonces are a random 4-byte salt per data key and a counter: unique for each key, which only the proxy
that made it ever encrypts with. Record keys are not encrypted but replaced by :meth:`Envelopes.keyed_hash`
(see :mod:`tenantry.proxy.record_encryption`).
"""

from __future__ import annotations

import hmac
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
    aead: AESGCM
    head: bytes  # MAGIC, the KEK id and the wrapped key: the front of every envelope sealed with this key
    aad: bytes
    created: float
    salt: bytes  # the nonce is this and a counter: unique per key without a random draw per record
    records: int = 0


@dataclass
class Envelopes:
    keys: KeyStore
    max_age: float = 3600.0
    max_records: int = 1 << 24
    cache_seconds: float = 600.0
    clock: Callable[[], float] = time.monotonic
    _current: dict[tuple[str, str], _DataKey] = field(default_factory=dict)
    _unwrapped: dict[tuple[str, bytes], tuple[AESGCM, float]] = field(default_factory=dict)
    _hash_keys: dict[str, bytes] = field(default_factory=dict)

    def sealing_key(self, tenant_id: str, topic: str, count: int) -> tuple[_DataKey, int]:
        """The topic's data key with `count` nonces reserved, and the first of them: a new key if the current
        one is too old or has too few records left."""
        now = self.clock()
        current = self._current.get((tenant_id, topic))
        if (current is None or current.records + count > self.max_records
                or now - current.created >= self.max_age):
            key = secrets.token_bytes(KEY_BYTES)
            wrapped = self.keys.wrap(tenant_id, key)
            kek_id = wrapped.kek_id.encode()
            head = _HEAD.pack(MAGIC, len(kek_id)) + kek_id + struct.pack(">H", len(wrapped.blob)) + wrapped.blob
            current = _DataKey(AESGCM(key), head, _aad(tenant_id, topic, head), now, secrets.token_bytes(4))
            self._current[(tenant_id, topic)] = current
        first = current.records + 1
        current.records += count
        return current, first

    def seal(self, tenant_id: str, topic: str, plaintext: bytes | memoryview) -> bytes:
        """MAGIC, the wrapped data key (KEK id and blob), a nonce and the AES-GCM ciphertext with its tag."""
        data_key, counter = self.sealing_key(tenant_id, topic, 1)
        nonce = data_key.salt + counter.to_bytes(8, "big")
        return data_key.head + nonce + data_key.aead.encrypt(nonce, plaintext, data_key.aad)

    def opening_key(self, tenant_id: str, topic: str, envelope: bytes | memoryview) -> tuple[int, AESGCM, bytes]:
        """How long the envelope's head is (MAGIC and the wrapped key; the nonce follows it), the data key it
        names, unwrapped, and the associated data to open it with; DecryptError if it names none."""
        try:
            magic, id_length = _HEAD.unpack_from(envelope)
            at = _HEAD.size
            kek_id = bytes(envelope[at:at + id_length]).decode()
            at += id_length
            (blob_length,) = struct.unpack_from(">H", envelope, at)
            at += 2
            blob = bytes(envelope[at:at + blob_length])
            at += blob_length
        except (struct.error, UnicodeDecodeError) as exc:
            raise DecryptError(f"not an envelope ({exc})") from None
        if magic != MAGIC or len(blob) != blob_length or len(envelope) < at + NONCE_BYTES:
            raise DecryptError("not an envelope of this version, or truncated")
        return at, self._unwrap(tenant_id, WrappedKey(kek_id, blob)), _aad(tenant_id, topic, envelope[:at])

    def open(self, tenant_id: str, topic: str, envelope: bytes | memoryview) -> bytes:
        at, aead, aad = self.opening_key(tenant_id, topic, envelope)
        try:
            return aead.decrypt(envelope[at:at + NONCE_BYTES], envelope[at + NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptError(f"record of {topic!r} fails authentication (tampered, or another topic's)") from None

    def keyed_hash(self, tenant_id: str, data: bytes | memoryview) -> bytes:
        """HMAC-SHA256 of `data` under the tenant's hash key: the same input gives the same output, on every
        proxy and across KEK rotations (what a compacted topic's record keys need), and nothing else."""
        key = self._hash_keys.get(tenant_id)
        if key is None:
            key = self._hash_keys[tenant_id] = self.keys.hash_key(tenant_id)
        return hmac.digest(key, data, "sha256")

    def forget(self, tenant_id: str) -> None:
        """Start new data keys for the tenant (its KEK was rotated): the next record wraps under the new one."""
        self._current = {k: v for k, v in self._current.items() if k[0] != tenant_id}

    def _unwrap(self, tenant_id: str, wrapped: WrappedKey) -> AESGCM:
        now = self.clock()
        cached = self._unwrapped.get((tenant_id, wrapped.blob))
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            aead = AESGCM(self.keys.unwrap(tenant_id, wrapped))
        except KeyStoreError as exc:
            raise DecryptError(str(exc)) from None
        if len(self._unwrapped) >= _MAX_CACHED:
            self._unwrapped = {k: v for k, v in self._unwrapped.items() if v[1] > now}  # the expired go
            while len(self._unwrapped) >= _MAX_CACHED:  # then the oldest: a bounded cache whatever is read
                del self._unwrapped[next(iter(self._unwrapped))]
        self._unwrapped[(tenant_id, wrapped.blob)] = (aead, now + self.cache_seconds)
        return aead


_MAX_CACHED = 4096


def _aad(tenant_id: str, topic: str, head: bytes | memoryview) -> bytes:
    return b"tenantry-record\0" + tenant_id.encode() + b"\0" + topic.encode() + b"\0" + bytes(head)
