"""Records of a tenant's encrypted topics, sealed on their way to the broker and opened on their way back.

Each record is rewritten inside its batch (see :mod:`tenantry.protocol.batches`, which keeps every header
field a producer or a read_committed consumer depends on) as:

- **value**: an envelope (:mod:`tenantry.tenants.envelope`) sealing the record's original key, value and
  headers, bound to the tenant and the topic;
- **key**: null stays null; any other key becomes its HMAC-SHA256 under the tenant's hash key and the
  topic. Equal keys stay equal, so compaction and the broker's view of ordering hold, but the key itself
  is not there;
- **headers**: one, ``tenantry.encryption`` (value ``v1``), which says the record is sealed. It is the only
  header name left visible. A record with it, or whose value starts as an envelope does, is opened or
  refused: a sealed record whose marker was tampered with is not passed on as if it were plaintext.

Timestamps, offsets, producer ids, sequences and the transactional and control bits stay as they were.
Batches are sent to the broker compressed with the producer's codec, and to consumers uncompressed:
an envelope does not compress, so the opened batch is no larger than the stored one, and a fetch is
spared the CPU of compressing again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from tenantry.protocol.batches import Batch, BatchError, batches, encode_varint, open_records, rebuild
from tenantry.protocol.compression import Codec
from tenantry.protocol.sealing import open_section, seal_section
from tenantry.proxy.settings import ProxyConfig
from tenantry.tenants.envelope import MAGIC, DecryptError, Envelopes
from tenantry.tenants.keystore import KeyStoreError, LocalKeyStore
from tenantry.tenants.registry import Registry

MARKER = b"tenantry.encryption"
MARKER_VERSION = b"v1"
_MARKER_HEADERS = (encode_varint(1) + encode_varint(len(MARKER)) + MARKER + encode_varint(len(MARKER_VERSION))
                   + MARKER_VERSION)
#: The most one Produce request's batches may decompress to in the proxy, together (a RecordCipher is made
#: per request): far above what a producer's batch.size makes, and a bound on what batches that decompress
#: to gigabytes (a 1 MB zstd batch can) cost, however many a 100 MB request holds. A Fetch response's
#: records field may open to this or OPENING_RATIO times its size, whichever is more.
MAX_OPENED = 64 * 1024 * 1024
OPENING_RATIO = 8


class EncryptError(Exception):
    """Records that cannot be sealed (a malformed batch, the key store unavailable): never sent in plaintext."""

    def __init__(self, message: str, malformed: bool) -> None:
        super().__init__(message)
        self.malformed = malformed  # the client's batch is at fault, rather than the key store


class RecordCipher:
    """Seals and opens the records fields of one tenant's Produce and Fetch payloads, batch by batch; the
    record-by-record loops are :mod:`tenantry.protocol.sealing`'s (in C), given this tenant's keys."""

    def __init__(self, envelopes: Envelopes, tenant_id: str) -> None:
        self.envelopes = envelopes
        self.tenant_id = tenant_id
        self.records = 0  # sealed or opened, for the metrics
        self._budget = MAX_OPENED  # decompressed bytes this cipher may still make (one per request)

    def seal(self, topic: str, records: memoryview) -> bytes:
        """The records field with every record sealed; EncryptError if it cannot be."""
        found, end = batches(records)
        if end != len(records):
            raise EncryptError("a Produce batch is truncated or lies about its length", malformed=True)
        out: list[bytes | memoryview] = []
        try:
            for batch in found:
                if batch.magic < 2:
                    raise EncryptError("a legacy (magic 0 or 1) message set cannot be encrypted", malformed=True)
                out.append(batch.data if batch.is_control else self._seal_batch(topic, batch))
        except BatchError as exc:
            raise EncryptError(f"a Produce batch is malformed: {exc}", malformed=True) from None
        except KeyStoreError as exc:
            raise EncryptError(f"the key store cannot wrap a data key: {exc}", malformed=False) from None
        return b"".join(out)

    def _open(self, batch: Batch) -> memoryview:
        data = open_records(batch, self._budget)
        self._budget -= len(data)
        return data

    def _seal_batch(self, topic: str, batch: Batch) -> bytes:
        data = self._open(batch)
        data_key, counter = self.envelopes.sealing_key(self.tenant_id, topic, batch.count)
        keyed_hash, tenant_id, hash_prefix = self.envelopes.keyed_hash, self.tenant_id, topic.encode() + b"\0"

        def token(key: memoryview) -> bytes:
            return keyed_hash(tenant_id, hash_prefix + key)
        section = seal_section(data, batch.count, data_key.aead.encrypt, token, data_key.head, data_key.salt,
                               counter, data_key.aad, _MARKER_HEADERS)
        self.records += batch.count
        return rebuild(batch, section, batch.codec)

    def open(self, topic: str, records: memoryview) -> bytes | None:
        """The records field with every sealed record opened (None if none was: keep the original); a
        truncated last batch is left out, as a client would drop it. DecryptError if a record cannot be
        opened: its bytes are never passed on."""
        found, end = batches(records)
        self._budget = max(self._budget, OPENING_RATIO * len(records))
        out: list[bytes | memoryview] = []
        changed = False
        try:
            for batch in found:
                opened = None if batch.magic < 2 or batch.is_control else self._open_batch(topic, batch)
                changed |= opened is not None
                out.append(batch.data if opened is None else opened)
        except BatchError as exc:
            raise DecryptError(f"a stored batch is malformed: {exc}") from None
        return b"".join(out) if changed or end != len(records) else None

    def _open_batch(self, topic: str, batch: Batch) -> bytes | None:
        data = self._open(batch)
        opening_key, tenant_id = self.envelopes.opening_key, self.tenant_id

        def key_for(envelope: memoryview) -> tuple[int, Any, bytes]:
            head_length, aead, aad = opening_key(tenant_id, topic, envelope)
            return head_length, aead.decrypt, aad
        try:
            section = open_section(data, batch.count, key_for, _MARKER_HEADERS, MAGIC)
        except (InvalidTag, ValueError):
            raise DecryptError(f"a record of {topic!r} fails authentication (tampered, or moved from another "
                               "topic)") from None
        if section is None:
            return None
        self.records += batch.count  # (at most: records written in plaintext are among them)
        return rebuild(batch, section, Codec.NONE)


def envelopes_for(config: ProxyConfig) -> Envelopes | None:
    """The proxy's envelopes, over its key store (None if no key store is set); KeyStoreError if unreadable."""
    if not config.encryption_key_store:
        return None
    return Envelopes(LocalKeyStore(Path(config.encryption_key_store)),
                     max_age=config.encryption_data_key_max_age_seconds,
                     max_records=config.encryption_data_key_max_records,
                     cache_seconds=config.encryption_key_cache_seconds)


def encryption_problems(config: ProxyConfig, registry: Registry) -> list[str]:
    """Why these tenants cannot run with this config's encryption settings: fail closed, never in plaintext."""
    encrypting = sorted(t.id for t in registry.tenants.values() if t.encryption)
    if encrypting and not config.encryption_key_store:
        return [f"encryption_key_store: not set, but tenant {', '.join(encrypting)} has encryption topics; "
                "their records would have no key to be sealed with"]
    if config.encryption_key_store:
        try:
            LocalKeyStore(Path(config.encryption_key_store))
        except KeyStoreError as exc:
            return [f"encryption_key_store: {exc}"]
    return []
