"""The batch rewriter against another implementation of Kafka's batch format (aiokafka's builder and
reader, which checks CRCs): records sealed then opened come back byte for byte, with every header field
a producer or a read_committed consumer relies on, in every codec. The real broker accepting what the
proxy writes is the integration tests' part (tests/integration/test_record_encryption.py)."""

from __future__ import annotations

import struct

import pytest
from aiokafka.record._crecords import DefaultRecordBatch, DefaultRecordBatchBuilder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantry.protocol.batches import BatchError, batches, open_records, record_spans
from tenantry.protocol.compression import Codec
from tenantry.proxy.record_encryption import _MARKER_HEADERS as MARKER_HEADERS
from tenantry.proxy.record_encryption import MARKER, EncryptError, RecordCipher
from tenantry.tenants.encryption_policy import EncryptionPolicy
from tenantry.tenants.envelope import DecryptError, Envelopes
from tenantry.tenants.keystore import LocalKeyStore

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def build(records: list[Record], codec: Codec = Codec.NONE, transactional: bool = False,
          producer: tuple[int, int, int] = (-1, -1, -1), base_offset: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(2, int(codec), int(transactional), *producer, batch_size=1 << 30)
    for i, (key, value, headers) in enumerate(records):
        builder.append(i, 1_700_000_000_000 + i * 7, key, value, headers)
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base_offset)
    return bytes(data)


def read(data: bytes) -> list[DefaultRecordBatch]:
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        batch = DefaultRecordBatch(data[pos:pos + 12 + length])
        assert batch.validate_crc()
        out.append(batch)
        pos += 12 + length
    return out


def fields(batch: DefaultRecordBatch) -> tuple:
    return (batch.base_offset, batch.last_offset_delta, batch.first_timestamp, batch.max_timestamp, batch.producer_id,
            batch.producer_epoch, batch.base_sequence, batch.is_transactional, batch.is_control_batch,
            batch.timestamp_type)


def contents(batch: DefaultRecordBatch) -> list[tuple]:
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch]


@pytest.fixture(scope="module")
def cipher(tmp_path_factory) -> RecordCipher:
    return RecordCipher(Envelopes(LocalKeyStore(tmp_path_factory.mktemp("keys") / "keys.json")), "acme")


@pytest.mark.parametrize("codec", list(Codec))
def test_a_batch_seals_and_opens_in_every_codec_with_its_producer_state(cipher, codec):
    records: list[Record] = [(b"k1", b"card 4111 1111", [("trace", b"t-1"), ("n", None)]),
                             (None, b"no key", []), (b"k3", None, [])]
    original = build(records, codec, transactional=True, producer=(4242, 3, 17), base_offset=99)
    sealed = cipher.seal("orders", memoryview(original))
    [on_disk] = read(sealed)
    assert fields(on_disk) == fields(read(original)[0]) and on_disk.compression_type == int(codec)
    stored = contents(on_disk)
    assert all(headers == [(MARKER.decode(), b"v1")] for _, _, _, _, headers in stored)
    assert b"4111" not in sealed and b"k1" not in sealed and b"trace" not in sealed
    assert stored[1][2] is None and len(stored[0][2]) == 32  # a null key stays null; a key becomes its hash
    opened = cipher.open("orders", memoryview(sealed))
    assert opened is not None
    [back] = read(opened)
    assert fields(back) == fields(on_disk) and back.compression_type == 0  # consumers get it uncompressed
    assert contents(back) == contents(read(original)[0])


def test_equal_keys_keep_equal_hashes_within_a_topic_and_differ_across_topics(cipher):
    one = contents(read(cipher.seal("t1", memoryview(build([(b"same", b"a", []), (b"same", b"b", [])]))))[0])
    two = contents(read(cipher.seal("t2", memoryview(build([(b"same", b"a", [])]))))[0])
    assert one[0][2] == one[1][2] != two[0][2]


def test_control_batches_and_plaintext_records_pass_unchanged(cipher):
    plain = build([(b"k", b"written before encryption", [])])
    assert cipher.open("orders", memoryview(plain)) is None  # nothing sealed: the broker's bytes, as they were
    control = bytearray(build([(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", [])], transactional=True,
                              producer=(7, 0, -1)))
    struct.pack_into(">h", control, 21, 0x30)  # transactional and control: a commit marker
    from crc32c import crc32c
    struct.pack_into(">I", control, 17, crc32c(bytes(control[21:])))
    assert cipher.seal("orders", memoryview(bytes(control))) == bytes(control)


def test_a_truncated_tail_is_dropped_on_fetch_and_refused_on_produce(cipher):
    sealed = cipher.seal("orders", memoryview(build([(b"k", b"v", [])])))
    two = sealed + sealed[:30]
    opened = cipher.open("orders", memoryview(two))
    assert opened is not None and len(read(opened)) == 1
    with pytest.raises(EncryptError) as refused:
        cipher.seal("orders", memoryview(build([(b"k", b"v", [])])[:-3]))
    assert refused.value.malformed


@pytest.mark.parametrize("damage", ["crc", "count", "length", "value", "topic"])
def test_damage_is_an_error_never_plaintext_or_garbage(cipher, damage):
    sealed = bytearray(cipher.seal("orders", memoryview(build([(b"k", b"secret", [])]))))
    topic = "orders"
    if damage == "crc":
        sealed[-1] ^= 1
    elif damage == "count":
        struct.pack_into(">i", sealed, 57, 5)
    elif damage == "length":
        sealed[61] = 0x7E  # the first record claims far more bytes than there are
    elif damage == "topic":
        topic = "other"  # a sealed record copied to another topic
    if damage in ("count", "length", "value"):
        if damage == "value":
            sealed[-40] ^= 1  # inside the ciphertext
        from crc32c import crc32c
        struct.pack_into(">I", sealed, 17, crc32c(bytes(sealed[21:])))  # a valid CRC over the damage
    with pytest.raises(DecryptError):
        cipher.open(topic, memoryview(bytes(sealed)))


def test_a_sealed_record_whose_marker_was_damaged_is_still_opened_not_passed_on(cipher):
    sealed = bytearray(cipher.seal("orders", memoryview(build([(b"k", b"secret", [])]))))
    sealed[-5] ^= 1  # the marker header's name: the value still starts as an envelope does
    from crc32c import crc32c
    struct.pack_into(">I", sealed, 17, crc32c(bytes(sealed[21:])))
    opened = cipher.open("orders", memoryview(bytes(sealed)))
    assert opened is not None and contents(read(opened)[0])[0][3] == b"secret"


def test_a_batch_that_decompresses_beyond_the_bound_is_refused():
    data = build([(None, b"\0" * 2_000_000, [])], Codec.ZSTD)
    [batch], _ = batches(memoryview(data))
    with pytest.raises(BatchError, match=r"larger than|more than"):
        record_spans(open_records(batch, 1_000_000), batch.count)


def test_policy_globs():
    policy = EncryptionPolicy(("pay.*", "pii-?"), ("old-*",))
    assert policy.seals("pay.cards") and policy.seals("pii-1") and not policy.seals("pii-12")
    assert policy.opens("old-x") and not policy.seals("old-x") and not policy.opens("public")
    assert not EncryptionPolicy() and EncryptionPolicy((), ("x",))


headers = st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=20)), max_size=3)
record = st.tuples(st.none() | st.binary(max_size=40), st.none() | st.binary(max_size=300), headers)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.lists(record, min_size=1, max_size=12), st.sampled_from(list(Codec)), st.booleans()),
                min_size=1, max_size=3))
def test_any_batches_round_trip(cipher, spec):
    original = b"".join(build(records, codec, transactional=tx, producer=(9, 1, 5 * i), base_offset=100 * i)
                        for i, (records, codec, tx) in enumerate(spec))
    sealed = cipher.seal("t", memoryview(original))
    opened = cipher.open("t", memoryview(sealed))
    assert opened is not None
    before, after = read(original), read(opened)
    assert [fields(b) for b in before] == [fields(b) for b in after]
    assert [contents(b) for b in before] == [contents(b) for b in after]


@settings(max_examples=300, deadline=None)
@given(st.lists(record, min_size=1, max_size=8), st.data())
def test_the_c_record_walk_agrees_with_the_python_reference(records, data):
    """The same spans for a valid records section, and the same verdict for a damaged one (truncated, a byte
    changed, bytes inserted, a wrong count)."""
    from tenantry.protocol.batches import record_spans_in_python
    from tenantry.protocol.native import NATIVE

    assert NATIVE is not None, "make test builds the C extension"
    [batch], _ = batches(memoryview(build(records)))
    section = bytes(open_records(batch, 1 << 20))
    count = batch.count
    damage = data.draw(st.sampled_from(["none", "truncate", "flip", "insert", "count"]))
    if damage == "truncate":
        section = section[:data.draw(st.integers(0, len(section) - 1))]
    elif damage == "flip":
        at = data.draw(st.integers(0, len(section) - 1))
        section = section[:at] + bytes([section[at] ^ data.draw(st.integers(1, 255))]) + section[at + 1:]
    elif damage == "insert":
        at = data.draw(st.integers(0, len(section)))
        section = section[:at] + data.draw(st.binary(min_size=1, max_size=12)) + section[at:]
    elif damage == "count":
        count = data.draw(st.integers(-2, count + 3).filter(lambda n: n != batch.count))

    def walk(fn):
        try:
            return fn(memoryview(section), count)
        except BatchError:
            return "refused"
    from tenantry.protocol.errors import DecodeError

    def native(view, n):
        try:
            return NATIVE.record_spans(view, n)
        except DecodeError:
            raise BatchError("refused") from None
    assert walk(native) == walk(record_spans_in_python)


def _fake_crypto():
    """Deterministic stand-ins for the ciphers, so the C and Python loops can be compared byte for byte."""
    import hashlib

    def encrypt(nonce, plain, aad):
        return bytes(b ^ 0x5A for b in bytes(plain)) + hashlib.sha256(bytes(nonce) + bytes(aad)).digest()[:16]

    def decrypt(nonce, sealed, aad):
        sealed = bytes(sealed)
        if sealed[-16:] != hashlib.sha256(bytes(nonce) + bytes(aad)).digest()[:16]:
            raise ValueError("tag")
        return bytes(b ^ 0x5A for b in sealed[:-16])

    def token(key):
        return hashlib.sha256(b"k" + bytes(key)).digest()

    def key_for(envelope):
        return 6, decrypt, b"aad"  # len(b"HEAD\x00\x01")
    return encrypt, decrypt, token, key_for


@settings(max_examples=200, deadline=None)
@given(st.lists(record, min_size=1, max_size=8), st.integers(0, 2**40), st.data())
def test_the_c_sealing_loops_agree_with_the_python_reference(records, counter, data):
    """The same sealed bytes, the same opened bytes (back to the original records), and the same verdict on
    a damaged sealed section."""
    from tenantry.protocol import sealing
    from tenantry.protocol.native import NATIVE

    assert NATIVE is not None, "make test builds the C extension"
    encrypt, _, token, key_for = _fake_crypto()
    [batch], _ = batches(memoryview(build(records)))
    section = open_records(batch, 1 << 20)
    args = (encrypt, token, b"HEAD\x00\x01", b"salt", counter, b"aad", MARKER_HEADERS)
    python = sealing.seal_section_in_python(section, batch.count, *args)
    native = NATIVE.seal_section(section, batch.count, *args)
    assert native == python
    opened = NATIVE.open_section(memoryview(native), batch.count, key_for, MARKER_HEADERS, b"HEAD")
    assert opened == sealing.open_section_in_python(memoryview(python), batch.count, key_for, MARKER_HEADERS,
                                                    b"HEAD") == bytes(section)
    at = data.draw(st.integers(0, len(native) - 1))
    damaged = native[:at] + bytes([native[at] ^ data.draw(st.integers(1, 255))]) + native[at + 1:]

    def verdict(fn):
        try:
            return fn(memoryview(damaged), batch.count, key_for, MARKER_HEADERS, b"HEAD")
        except (ValueError, BatchError):
            return "refused"
        except Exception as exc:  # the C walk's DecodeError is the Python walk's BatchError
            return "refused" if type(exc).__name__ == "DecodeError" else exc
    assert verdict(NATIVE.open_section) == verdict(sealing.open_section_in_python)


def test_a_request_whose_batches_decompress_beyond_the_bound_together_is_refused(tmp_path):
    from tenantry.proxy import record_encryption

    bomb = build([(None, b"\0" * 40_000_000, [])], Codec.ZSTD)  # 40 MB each, a few kB compressed
    assert len(bomb) < 100_000
    cipher = RecordCipher(Envelopes(LocalKeyStore(tmp_path / "keys.json")), "acme")
    with pytest.raises(EncryptError) as refused:
        cipher.seal("t", memoryview(bomb + bomb))  # one is under MAX_OPENED, two together are not
    assert refused.value.malformed and record_encryption.MAX_OPENED == 64 * 1024 * 1024
    fresh = RecordCipher(Envelopes(LocalKeyStore(tmp_path / "keys.json")), "acme")
    assert fresh.seal("t", memoryview(bomb))  # alone it passes
