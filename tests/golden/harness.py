"""Runs one golden case: a sample request and its response through a tenant's rewriter, as plain data.

The rewriter gets real frames (header and body bytes, as a client or broker sends them) and its output
chunks are joined and decoded again, so a golden shows what goes on the wire, in a form a reader can diff.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

from tenantry.protocol.codec import decode, encode
from tenantry.protocol.headers import (
    encode_request_header,
    encode_response_header,
    parse_request_header,
    response_body_offset,
    response_header_version,
)
from tenantry.protocol.messages import REQUESTS, RESPONSES
from tenantry.protocol.schema import Struct
from tenantry.proxy.rewrite.hooks import Refusal
from tenantry.proxy.rewrite.policy import tenant_table
from tenantry.proxy.rewrite.rewriter import Addresses, Leak, Rewriter
from tenantry.proxy.rewrite.topic_ids import TopicIds
from tenantry.tenants.naming import Namespace
from tests.golden import samples

ADVERTISED = "proxy.example"
PORT_BASE = 19100
#: A random id the proxy swaps in for a foreign topic id is shown by this name.
FRESH_ID = "<fresh random id>"


def tenant_apis() -> dict[int, tuple[int, int]]:
    """Every API offered to tenants (beyond login), with the lowest and highest version it is offered at."""
    from tenantry.proxy.api_versions import PROXY_VERSIONS
    from tenantry.proxy.rewrite.policy import ANSWERED_BY_PROXY

    return {key: (v.lo, v.hi if v.hi is not None else v.lo) for key, v in tenant_table(PROXY_VERSIONS).items()
            if key not in (17, 18, 36) and key not in ANSWERED_BY_PROXY}


def topic_ids() -> TopicIds:
    ids = TopicIds()
    for tenant, prefix in samples.TENANTS.items():
        ids.learn(samples.TOPIC_IDS[tenant], prefix + "orders")
    return ids


def plain(value: Any) -> Any:
    """A decoded message as YAML-friendly data: dicts by field, bytes as base64, ids as text."""
    if isinstance(value, Struct):
        out = {f.name: plain(getattr(value, f.name)) for f in type(value).FIELDS}
        if value.unknown_tags:
            out["unknown_tags"] = {k: plain(v) for k, v in value.unknown_tags.items()}
        return out
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "base64:" + base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID):
        known = {i: t for t, i in samples.TOPIC_IDS.items()}
        return str(value) if value in known or value.int < 2**32 else FRESH_ID
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)  # an ErrorCode enum member is written as its number
    return value


def run_case(api_key: int, version: int, tenant: str, listing: bool = False,
             variant: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """The request and response of one API at one version for one tenant, before and after rewriting."""
    rewriter = Rewriter(Namespace(samples.TENANTS[tenant]), topic_ids(), tenant)
    request = samples.request_sample(api_key, REQUESTS[api_key], version, tenant, listing)
    if variant is not None:
        variant(request)
    frame = memoryview(encode_request_header(api_key, version, 7, "app") + encode(request, version))
    header = parse_request_header(frame)
    case: dict[str, Any] = {"version": version, "tenant": tenant}
    try:
        parts, ctx = rewriter.request(frame, header, ids_looked_up=True)
    except Refusal as refused:
        case["request"] = {"in": plain(request), "refused": plain(refused.response)}
        return case
    sent = memoryview(b"".join(bytes(p) for p in parts))
    sent_header = parse_request_header(sent)
    case["request"] = {"in": plain(request), "client_id": sent_header.client_id,
                       "out": plain(decode(REQUESTS[api_key], sent[sent_header.body_offset:], version))}
    response = samples.response_sample(api_key, RESPONSES[api_key], version, tenant, listing)
    head = encode_response_header(7, response_header_version(api_key, version))
    rframe = memoryview(head + encode(response, version))
    offset = response_body_offset(rframe, response_header_version(api_key, version))
    addresses = Addresses(ADVERTISED, lambda node: PORT_BASE + node)
    try:
        chunks = rewriter.response(api_key, version, rframe, offset, ctx, addresses)
    except Leak as leak:
        case["response"] = {"in": plain(response), "leak": str(leak)}
        return case
    out = memoryview(b"".join(bytes(c) for c in chunks))
    case["response"] = {"in": plain(response), "out": plain(decode(RESPONSES[api_key], out[offset - 4:], version)),
                        "brokers_seen": [list(s) for s in addresses.seen]}
    return case


def cases_for(api_key: int) -> list[dict[str, Any]]:
    lo, hi = tenant_apis()[api_key]
    out = []
    for version in sorted({lo, hi}):
        for tenant in samples.TENANTS:
            out.append(run_case(api_key, version, tenant))
            if api_key in samples.LISTINGS:
                out.append(run_case(api_key, version, tenant, listing=True) | {"listing": True})
    for name, variant in samples.VARIANTS.get(api_key, []):
        for tenant in samples.TENANTS:
            out.append(run_case(api_key, hi, tenant, variant=variant) | {"variant": name})
    return out
