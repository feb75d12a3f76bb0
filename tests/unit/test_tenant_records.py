"""The Kafka tenant store's records, without Kafka: what the CLI writes for a change, and what replicas rebuild."""

from __future__ import annotations

import copy

import pytest

from tenantry.tenants import admin
from tenantry.tenants.registry import Registry
from tenantry.tenants.tenant_records import (
    DEFAULTS_KEY,
    TENANT_KEY,
    RecordError,
    TenantTable,
    change_headers,
    changes,
    describe_headers,
    encode_entry,
)


def config_with(*tenant_ids: str) -> dict:
    data: dict = {}
    for tenant_id in tenant_ids:
        admin.add_tenant(data, tenant_id)
        admin.add_user(data, tenant_id, f"{tenant_id}-user", "PLAIN", "a-long-password")
    return data


def replay(table: TenantTable, todo) -> None:
    for change in todo:
        table.apply(change.key, encode_entry(change.entry) if change.entry is not None else None)


def test_only_the_changed_tenants_are_written_and_replaying_them_gives_the_same_tenants():
    before = config_with("acme", "globex")
    after = copy.deepcopy(before)
    admin.set_quotas(after, "acme", {"produce_bytes_per_sec": 1000})
    after["tenants"] = [t for t in after["tenants"] if t["id"] != "globex"]
    todo = changes(before, after)
    assert [(c.key, c.entry is None) for c in todo] == [(TENANT_KEY + "acme", False), (TENANT_KEY + "globex", True)]
    table = TenantTable()
    replay(table, changes({}, before))
    replay(table, todo)
    assert Registry.from_config(table.config()).tenants["acme"].quotas.produce_bytes_per_sec == 1000
    assert set(Registry.from_config(table.config()).tenants) == {"acme"}


def test_stored_users_have_salted_keys_only():
    todo = changes({}, config_with("acme"))
    value = encode_entry(todo[0].entry)
    assert b"a-long-password" not in value


def test_defaults_are_a_record_of_their_own():
    before = config_with("acme")
    after = copy.deepcopy(before)
    after["tenant_defaults"] = {"quotas": {"produce_bytes_per_sec": 5}}
    todo = changes(before, after)
    assert [c.key for c in todo] == [DEFAULTS_KEY]
    table = TenantTable()
    replay(table, changes({}, after))
    assert table.config()["tenant_defaults"] == {"quotas": {"produce_bytes_per_sec": 5}}


@pytest.mark.parametrize(("key", "value"), [
    ("tenant/acme", b"not json"),
    ("tenant/acme", b'{"format": 2, "entry": {}}'),
    ("tenant/acme", encode_entry({"id": "globex"})),  # a record may not put a tenant under another's key
    ("someone-elses-key", encode_entry({"id": "acme"})),
    ("tenant/", encode_entry({"id": ""})),
    ("tenant/acme", b"x" * (1024 * 1024 + 1)),
])
def test_foreign_or_lying_records_are_refused(key, value):
    with pytest.raises(RecordError):
        TenantTable().apply(key, value)


def test_the_headers_say_who_changed_what_and_when():
    headers = change_headers("ops@host", "2026-12-02T14:00:00+00:00", "tenantry quota set acme")
    assert describe_headers(headers) == "by ops@host at 2026-12-02T14:00:00+00:00: tenantry quota set acme"
