"""Envelope encryption's core: KEKs per tenant in a local key store, data keys per topic, rotation, and
failures that never yield plaintext or garbage."""

from __future__ import annotations

import stat

import pytest

from tenantry.tenants.envelope import DecryptError, Envelopes
from tenantry.tenants.keystore import KeyStoreError, LocalKeyStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def envelopes(tmp_path, **settings) -> Envelopes:
    return Envelopes(LocalKeyStore(tmp_path / "keys.json"), **settings)


def test_a_record_round_trips_and_the_store_is_created_owner_only(tmp_path):
    e = envelopes(tmp_path)
    sealed = e.seal("acme", "orders", b"card 4111")
    assert b"card 4111" not in sealed and e.open("acme", "orders", sealed) == b"card 4111"
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    again = envelopes(tmp_path)  # another proxy with the same key store
    assert again.open("acme", "orders", sealed) == b"card 4111"


@pytest.mark.parametrize("where", ["tenant", "topic", "tampered", "truncated", "plaintext"])
def test_an_envelope_that_does_not_belong_never_opens(tmp_path, where):
    e = envelopes(tmp_path)
    sealed = e.seal("acme", "orders", b"secret")
    tenant, topic = "acme", "orders"
    if where == "tenant":
        tenant = "globex"
    elif where == "topic":
        topic = "other"
    elif where == "tampered":
        sealed = sealed[:-1] + bytes([sealed[-1] ^ 1])
    elif where == "truncated":
        sealed = sealed[:10]
    else:
        sealed = b"secret"
    with pytest.raises(DecryptError):
        e.open(tenant, topic, sealed)


def test_data_keys_rotate_by_count_and_by_age(tmp_path):
    clock = Clock()
    e = envelopes(tmp_path, max_records=2, max_age=60, clock=clock)
    head = lambda sealed: sealed[:60]  # noqa: E731 (the wrapped key sits at the front)
    first, second, third = (e.seal("acme", "t", b"x") for _ in range(3))
    assert head(first) == head(second) != head(third)
    clock.now += 61
    fourth = e.seal("acme", "t", b"x")
    assert head(fourth) != head(third)
    assert [e.open("acme", "t", s) for s in (first, second, third, fourth)] == [b"x"] * 4


def test_a_rotated_kek_still_opens_what_it_wrapped(tmp_path):
    store = LocalKeyStore(tmp_path / "keys.json")
    e = Envelopes(store, cache_seconds=0)
    before = e.seal("acme", "t", b"old")
    store.rotate("acme")
    e2 = Envelopes(LocalKeyStore(tmp_path / "keys.json"), cache_seconds=0)
    after = e2.seal("acme", "t", b"new")
    assert e2.open("acme", "t", before) == b"old" and e2.open("acme", "t", after) == b"new"


def test_a_missing_key_or_a_broken_store_is_an_error(tmp_path):
    e = envelopes(tmp_path)
    sealed = e.seal("acme", "t", b"x")
    (tmp_path / "keys.json").unlink()
    with pytest.raises(DecryptError, match="no key-encryption key"):
        Envelopes(LocalKeyStore(tmp_path / "keys.json")).open("acme", "t", sealed)
    (tmp_path / "keys.json").write_text("{not json")
    with pytest.raises(KeyStoreError, match="cannot read the key store"):
        LocalKeyStore(tmp_path / "keys.json")
