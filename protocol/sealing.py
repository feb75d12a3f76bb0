"""Records sections rewritten record by record, with the cryptography given as callables.

Record encryption seals each record's key, value and headers into its value and opens them again (see
:mod:`tenantry.proxy.record_encryption` for the layout and :mod:`tenantry.tenants.envelope` for the
keys). The loops here only take records apart and put them together, once per record of every batch of
an encrypted topic: C runs them (``_native.seal_section`` and ``open_section``) and these Python
versions stay the reference, held to the same bytes by the property tests.

A sealed record is::

    attributes, timestamp delta, offset delta (as they were) | key: null, or the key's 32-byte token |
    value: head + nonce + AES-GCM(key, value and headers as they were) | headers: `marker` (exactly)
"""

from __future__ import annotations

from collections.abc import Callable

from tenantry.protocol.batches import BatchError, encode_varint, record_spans
from tenantry.protocol.errors import DecodeError
from tenantry.protocol.native import NATIVE

NONCE = 12
TAG = 16
TOKEN = 32
_NULL = encode_varint(-1)
_TOKEN_LENGTH = encode_varint(TOKEN)

Encrypt = Callable[[bytes, memoryview, bytes], bytes]  # (nonce, plaintext, associated data) -> sealed + tag
Token = Callable[[memoryview], bytes]  # a record key -> its 32-byte token
#: An envelope (from its start to the end of the value) -> (length of its head, decrypt, associated data).
KeyFor = Callable[[memoryview], tuple[int, Callable[[memoryview, memoryview, bytes], bytes], bytes]]


def seal_section(data: memoryview, count: int, encrypt: Encrypt, token: Token, head: bytes, salt: bytes,
                 counter: int, aad: bytes, marker: bytes) -> bytes:
    """Every record of a decompressed records section sealed; nonces are `salt` + counter, counter + 1, ...
    BatchError if the section is malformed."""
    if NATIVE is not None:
        try:
            return NATIVE.seal_section(data, count, encrypt, token, head, salt, counter, aad,  # type: ignore[no-any-return]
                                       marker)
        except DecodeError as exc:
            raise BatchError(str(exc)) from None
    return seal_section_in_python(data, count, encrypt, token, head, salt, counter, aad, marker)


def seal_section_in_python(data: memoryview, count: int, encrypt: Encrypt, token: Token, head: bytes, salt: bytes,
                           counter: int, aad: bytes, marker: bytes) -> bytes:
    """:func:`seal_section` in Python: the reference."""
    overhead = len(head) + NONCE + len(marker)
    parts: list[bytes | memoryview] = []
    for start, fields, key_start, key_end, _, _, _, end in record_spans(data, count):
        nonce = salt + counter.to_bytes(8, "big")
        counter += 1
        sealed = encrypt(nonce, data[fields:end], aad)
        key = _NULL if key_start < 0 else _token(token, data[key_start:key_end])
        value_length = encode_varint(len(head) + NONCE + len(sealed))
        length = fields - start + len(key) + len(value_length) + overhead + len(sealed)
        parts += (encode_varint(length), data[start:fields], key, value_length, head, nonce, sealed, marker)
    return b"".join(parts)


def _token(token: Token, key: memoryview) -> bytes:
    made = token(key)
    if len(made) != TOKEN:
        raise ValueError(f"a key token is {TOKEN} bytes, not {len(made)}")
    return _TOKEN_LENGTH + made


def open_section(data: memoryview, count: int, key_for: KeyFor, marker: bytes, magic: bytes) -> bytes | None:
    """Every sealed record of a decompressed records section opened (records written in plaintext, with
    neither `marker` nor a value starting with `magic`, kept as they are); None if none was sealed.
    BatchError if the section is malformed; whatever `key_for` or a decrypt raises, as it is."""
    if NATIVE is not None:
        try:
            return NATIVE.open_section(data, count, key_for, marker, magic)  # type: ignore[no-any-return]
        except DecodeError as exc:
            raise BatchError(str(exc)) from None
    return open_section_in_python(data, count, key_for, marker, magic)


def open_section_in_python(data: memoryview, count: int, key_for: KeyFor, marker: bytes,
                           magic: bytes) -> bytes | None:
    """:func:`open_section` in Python: the reference."""
    head: bytes | None = None  # the last envelope head seen, and what opens it
    head_length, decrypt, aad = 0, None, b""
    parts: list[bytes | memoryview] = []
    opened = 0
    for start, fields, _, _, value_start, value_end, headers, end in record_spans(data, count):
        if data[headers:end] != marker and (value_start < 0 or data[value_start:value_start + len(magic)] != magic):
            parts += (encode_varint(end - start), data[start:end])  # plaintext, written before encryption
            continue
        if value_start < 0:
            raise BatchError("a sealed record has no value")
        if head is None or data[value_start:value_start + head_length] != head:
            head_length, decrypt, aad = key_for(data[value_start:value_end])
            head = bytes(data[value_start:value_start + head_length])
        if value_end - value_start < head_length + NONCE + TAG:
            raise BatchError("a sealed record's value is shorter than an envelope")
        assert decrypt is not None
        at = value_start + head_length
        parcel = decrypt(data[at:at + NONCE], data[at + NONCE:value_end], aad)
        parts += (encode_varint(fields - start + len(parcel)), data[start:fields], parcel)
        opened += 1
    return b"".join(parts) if opened else None
