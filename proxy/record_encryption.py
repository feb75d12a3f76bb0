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

from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag

from tenantry.protocol.batches import Batch, BatchError, batches, encode_varint, open_records, rebuild, record_spans
from tenantry.protocol.compression import Codec
from tenantry.proxy.settings import ProxyConfig
from tenantry.tenants.encryption_policy import EncryptionPolicy
from tenantry.tenants.envelope import MAGIC, DecryptError, Envelopes
from tenantry.tenants.keystore import NONCE_BYTES, KeyStoreError, LocalKeyStore
from tenantry.tenants.registry import Registry

MARKER = b"tenantry.encryption"
MARKER_VERSION = b"v1"
_MARKER_HEADERS = (encode_varint(1) + encode_varint(len(MARKER)) + MARKER + encode_varint(len(MARKER_VERSION))
                   + MARKER_VERSION)
_NULL = encode_varint(-1)
_TOKEN_LENGTH = encode_varint(32)  # a key's HMAC-SHA256
#: The most a batch may decompress to in the proxy: far above any batch a producer's batch.size makes,
#: and a bound on what a 1 MB batch that decompresses to gigabytes can cost.
MAX_OPENED_BATCH = 64 * 1024 * 1024


class EncryptError(Exception):
    """Records that cannot be sealed (a malformed batch, the key store unavailable): never sent in plaintext."""

    def __init__(self, message: str, malformed: bool) -> None:
        super().__init__(message)
        self.malformed = malformed  # the client's batch is at fault, rather than the key store


class RecordCipher:
    """Seals and opens the records fields of one tenant's Produce and Fetch payloads.

    The loops below run once per record of every encrypted batch: they take the record's parts from
    :func:`record_spans` (C) and build the new records section as one list of slices, joined once."""

    def __init__(self, envelopes: Envelopes, tenant_id: str) -> None:
        self.envelopes = envelopes
        self.tenant_id = tenant_id
        self.records = 0  # sealed or opened, for the metrics

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

    def _seal_batch(self, topic: str, batch: Batch) -> bytes:
        data = open_records(batch, MAX_OPENED_BATCH)
        spans = record_spans(data, batch.count)
        data_key, counter = self.envelopes.sealing_key(self.tenant_id, topic, len(spans))
        encrypt, head, aad, salt = data_key.aead.encrypt, data_key.head, data_key.aad, data_key.salt
        keyed_hash, tenant_id, hash_prefix = self.envelopes.keyed_hash, self.tenant_id, topic.encode() + b"\0"
        overhead = len(head) + NONCE_BYTES + len(_MARKER_HEADERS)
        parts: list[bytes | memoryview] = []
        for start, fields, key_start, key_end, _, _, _, end in spans:
            nonce = salt + counter.to_bytes(8, "big")
            counter += 1
            sealed = encrypt(nonce, data[fields:end], aad)
            if key_start < 0:
                key = _NULL
            else:
                key = _TOKEN_LENGTH + keyed_hash(tenant_id, hash_prefix + data[key_start:key_end])
            value_length = encode_varint(len(head) + NONCE_BYTES + len(sealed))
            length = fields - start + len(key) + len(value_length) + overhead + len(sealed)
            parts += (encode_varint(length), data[start:fields], key, value_length, head, nonce, sealed,
                      _MARKER_HEADERS)
        self.records += len(spans)
        return rebuild(batch, b"".join(parts), batch.codec)

    def open(self, topic: str, records: memoryview) -> bytes | None:
        """The records field with every sealed record opened (None if none was: keep the original); a
        truncated last batch is left out, as a client would drop it. DecryptError if a record cannot be
        opened: its bytes are never passed on."""
        found, _ = batches(records)
        out: list[bytes | memoryview] = []
        changed = False
        try:
            for batch in found:
                opened = None if batch.magic < 2 or batch.is_control else self._open_batch(topic, batch)
                changed |= opened is not None
                out.append(batch.data if opened is None else opened)
        except BatchError as exc:
            raise DecryptError(f"a stored batch is malformed: {exc}") from None
        return b"".join(out) if changed or sum(len(b.data) for b in found) != len(records) else None

    def _open_batch(self, topic: str, batch: Batch) -> bytes | None:
        data = open_records(batch, MAX_OPENED_BATCH)
        opening_key, tenant_id = self.envelopes.opening_key, self.tenant_id
        head: bytes | memoryview = b"\xff"  # the last envelope head seen, and what opens it
        head_length, decrypt, aad = 0, None, b""
        parts: list[bytes | memoryview] = []
        opened = 0
        for start, fields, _, _, value_start, value_end, headers, end in record_spans(data, batch.count):
            if data[headers:end] != _MARKER_HEADERS and (
                    value_start < 0 or data[value_start:value_start + len(MAGIC)] != MAGIC):
                parts += (encode_varint(end - start), data[start:end])  # plaintext, written before encryption
                continue
            if value_start < 0:
                raise DecryptError("a sealed record has no value")
            if decrypt is None or data[value_start:value_start + head_length] != head:
                head_length, aead, aad = opening_key(tenant_id, topic, data[value_start:value_end])
                head, decrypt = bytes(data[value_start:value_start + head_length]), aead.decrypt
            at = value_start + head_length
            try:
                parcel = decrypt(data[at:at + NONCE_BYTES], data[at + NONCE_BYTES:value_end], aad)
            except InvalidTag:
                raise DecryptError(f"a record of {topic!r} fails authentication (tampered, or moved from another "
                                   "topic)") from None
            parts += (encode_varint(fields - start + len(parcel)), data[start:fields], parcel)
            opened += 1
        if not opened:
            return None
        self.records += opened
        return rebuild(batch, b"".join(parts), Codec.NONE)


def any_opened(policy: EncryptionPolicy, topics: Iterable[str]) -> bool:
    return any(policy.opens(topic) for topic in topics)


def envelopes_for(config: ProxyConfig) -> Envelopes | None:
    """The proxy's envelopes, over its key store (None if no key store is set); KeyStoreError if unreadable."""
    if not config.encryption_key_store:
        return None
    return Envelopes(LocalKeyStore(Path(config.encryption_key_store)),
                     max_age=config.encryption_data_key_max_age_seconds,
                     max_records=config.encryption_data_key_max_records,
                     cache_seconds=config.encryption_key_cache_seconds)


def setup_problems(config: ProxyConfig, registry: Registry) -> list[str]:
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
