"""Tenants stored in a compacted Kafka topic (tenant_store = "kafka"): the records, without the I/O.

One record per tenant, keyed ``tenant/<id>``, whose value is the tenant's entry exactly as the config file
writes it (users with salted keys only, quotas, limits, ACLs, encryption), as JSON; a tombstone (no value)
removes it. ``defaults`` holds [tenant_defaults]. Compaction keeps the latest record per key, so reading
the topic from the start gives the current tenants. Every record carries who changed it, when and how,
in its headers; replicas log that as they apply it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TENANT_KEY = "tenant/"
DEFAULTS_KEY = "defaults"
MAX_VALUE_BYTES = 1024 * 1024  # a tenant with thousands of users and ACLs fits; Kafka's default message size


class RecordError(ValueError):
    """A record of the tenant topic that is not one of this format; the message says why."""


@dataclass(frozen=True)
class Change:
    """One record to write: a tenant's entry (None removes it), or the defaults."""

    key: str
    entry: dict[str, Any] | None


def encode_entry(entry: dict[str, Any]) -> bytes:
    value = json.dumps({"format": 1, "entry": entry}, separators=(",", ":"), sort_keys=True).encode()
    if len(value) > MAX_VALUE_BYTES:
        raise RecordError(f"the record is {len(value)} bytes, more than the {MAX_VALUE_BYTES} a record may hold")
    return value


def decode_entry(value: bytes) -> dict[str, Any]:
    if len(value) > MAX_VALUE_BYTES:
        raise RecordError("a record larger than MAX_VALUE_BYTES")
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("entry"), dict):
        raise RecordError("not a tenant record of format 1")
    entry: dict[str, Any] = data["entry"]
    return entry


def change_headers(who: str, when: str, what: str) -> list[tuple[str, bytes]]:
    return [("changed_by", who.encode()), ("changed_at", when.encode()), ("change", what.encode())]


def describe_headers(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> str:
    """`by <who> at <when>: <what>` from a record's headers, for the log."""
    got = {k: v.decode(errors="replace") for k, v in headers}
    return f"by {got.get('changed_by', '?')} at {got.get('changed_at', '?')}: {got.get('change', '?')}"


@dataclass
class TenantTable:
    """The tenants as the topic holds them: apply every record in order, then read `config()`."""

    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    def apply(self, key: str, value: bytes | None) -> str | None:
        """Apply one record; the tenant id it changed (None for the defaults). RecordError for a foreign one."""
        if key == DEFAULTS_KEY:
            self.defaults = decode_entry(value) if value is not None else {}
            return None
        if not key.startswith(TENANT_KEY) or len(key) == len(TENANT_KEY):
            raise RecordError(f"unknown key {key[:80]!r}")
        tenant_id = key[len(TENANT_KEY):]
        if value is None:
            self.tenants.pop(tenant_id, None)
            return tenant_id
        entry = decode_entry(value)
        if entry.get("id") != tenant_id:
            raise RecordError(f"record {key!r} holds tenant {entry.get('id')!r}")
        self.tenants[tenant_id] = entry
        return tenant_id

    def config(self) -> dict[str, Any]:
        """The tenants in the config file's shape, for Registry.from_config."""
        out: dict[str, Any] = {"tenants": [self.tenants[t] for t in sorted(self.tenants)]}
        if self.defaults:
            out["tenant_defaults"] = self.defaults
        return out


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """The records that take the topic from config `before` to config `after` (tenants and defaults)."""
    old = {t["id"]: t for t in before.get("tenants", [])}
    new = {t["id"]: t for t in after.get("tenants", [])}
    out = [Change(TENANT_KEY + t, new[t]) for t in sorted(new) if old.get(t) != new[t]]
    out += [Change(TENANT_KEY + t, None) for t in sorted(set(old) - set(new))]
    if before.get("tenant_defaults", {}) != after.get("tenant_defaults", {}):
        out.append(Change(DEFAULTS_KEY, after.get("tenant_defaults") or None))
    return out
