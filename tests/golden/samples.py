"""Sample messages for the golden tests: every field filled from the schema, names chosen per tenant.

A sample is deterministic: the same API, version and tenant always give the same message, so a golden
file records exactly what the rewriter did to it. Fields that name a tenant's resource get that
tenant's names (prefixed in responses, which come from the cluster); fields the schemas do not mark
but the proxy must still rewrite (embedded consumer-protocol bytes, KIP-848 regexes, config resources,
coordinator keys) get values that exercise that rewrite.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from tenantry.protocol.codec import encode
from tenantry.protocol.messages.consumer_protocol_assignment import (
    ConsumerProtocolAssignment,
    TopicPartition,
)
from tenantry.protocol.messages.consumer_protocol_subscription import ConsumerProtocolSubscription
from tenantry.protocol.schema import Field, Struct

#: Two tenants, so a golden shows that each gets its own prefix and never the other's names.
TENANTS = {"acme": "acme.", "globex": "globex."}
TOPIC_IDS = {"acme": uuid.UUID(int=0xACE), "globex": uuid.UUID(int=0x610BE8)}
UNOWNED_TOPIC = "initech.payroll"  # a third tenant's topic, listed by the broker beside the tenant's own

_NAMES = {"topicName": "orders", "groupId": "billing", "transactionalId": "txn-1"}
_INTS = {"int8", "int16", "uint16", "int32", "int64"}


def consumer_subscription(topics: list[str]) -> bytes:
    sub = ConsumerProtocolSubscription(topics=topics, user_data=b"ud")
    return b"\x00\x01" + encode(sub, 1)


def consumer_assignment(topic: str) -> bytes:
    return b"\x00\x01" + encode(ConsumerProtocolAssignment(
        assigned_partitions=[TopicPartition(topic=topic, partitions=[0, 1])], user_data=None), 1)


def fill(cls: type[Struct], version: int, tenant: str, response: bool, listing_api: bool = False) -> Any:
    """An instance of `cls` at `version` with every field present in that version set."""
    kwargs: dict[str, Any] = {}
    for f in cls.FIELDS:
        if not f.in_version(version):
            continue
        if f.struct is not None:
            if f.array:
                items = [fill(f.struct, version, tenant, response, listing_api)]
                if listing_api and response and _names_in(f.struct, version):
                    items.append(fill(f.struct, version, "initech", response))
                kwargs[f.name] = items
            else:
                kwargs[f.name] = fill(f.struct, version, tenant, response, listing_api)
            continue
        value = _scalar(f, tenant, response)
        kwargs[f.name] = [value] if f.array else value
    return cls(**kwargs)


def _names_in(cls: type[Struct], version: int) -> bool:
    return any(f.entity in _NAMES for f in cls.FIELDS if f.in_version(version) and f.struct is None)


def _scalar(f: Field, tenant: str, response: bool) -> Any:
    if f.entity in _NAMES:
        name = _NAMES[f.entity]
        if tenant == "initech":
            return UNOWNED_TOPIC if f.entity == "topicName" else f"initech.{name}"
        return TENANTS[tenant] + name if response else name
    if f.entity == "topicId":
        return TOPIC_IDS.get(tenant, uuid.UUID(int=0x1E7EC4))
    if f.entity == "addressHost":
        return "broker-1.internal"
    if f.entity == "addressPort":
        return 9092
    if f.entity == "addressNodeId":
        return 1
    if f.entity == "errorMessage":
        return f"topic {TENANTS.get(tenant, 'initech.')}orders is busy" if response else "m"
    if f.entity == "errorCode":
        return 0
    if f.type in _INTS:
        return 1
    return {"float64": 0.5, "bool": False, "string": "s", "bytes": b"\x01\x02", "records": b"RECORDS",
            "uuid": uuid.UUID(int=7)}[f.type]


#: APIs whose responses list resources rather than answer for named ones: a sample response also
#: carries a third tenant's entry, which the proxy must filter out.
LISTINGS = {3, 16, 66, 75}


def request_sample(api_key: int, cls: type[Struct], version: int, tenant: str, listing: bool) -> Any:
    m = fill(cls, version, tenant, response=False)
    _adjust(api_key, m, version, tenant, response=False, listing=listing)
    return m


def response_sample(api_key: int, cls: type[Struct], version: int, tenant: str, listing: bool) -> Any:
    m = fill(cls, version, tenant, response=True, listing_api=api_key in LISTINGS and listing)
    _adjust(api_key, m, version, tenant, response=True, listing=listing)
    return m


def _adjust(api_key: int, m: Any, version: int, tenant: str, response: bool, listing: bool) -> None:
    """Values the schema cannot tell the filler: the fields the proxy rewrites by hand."""
    own = TENANTS[tenant] if response else ""
    if api_key == 3 and not response and listing:
        m.topics = None if version > 0 else []
    if api_key == 75 and not response and listing:
        m.topics, m.cursor = [], None
    if api_key == 10:
        if not response:
            m.key_type = 0
            if hasattr(m, "key"):
                m.key = "billing"
            m.coordinator_keys = ["billing"] if version >= 4 else []
        else:
            for c in getattr(m, "coordinators", []):
                c.key = own + "billing"
    if api_key in (11, 14, 15):
        _consumer_protocol(api_key, m, version, own, response)
    if api_key in (32, 33, 44):
        for r in getattr(m, "resources", None) or getattr(m, "results", None) or getattr(m, "responses", []):
            r.resource_type, r.resource_name = 2, own + "orders"
    if api_key == 68 and not response and hasattr(m, "subscribed_topic_regex"):
        m.subscribed_topic_regex = "orders-.*"
    if api_key == 69 and response:
        for g in m.groups:
            for member in g.members:
                if hasattr(member, "subscribed_topic_regex"):
                    member.subscribed_topic_regex = f"{own.replace('.', chr(92) + '.')}(?:orders-.*)"
    if api_key == 66 and not response and hasattr(m, "transactional_id_pattern"):
        m.transactional_id_pattern = "txn-.*"
    if response and hasattr(m, "client_id"):
        m.client_id = own + "app"


def _consumer_protocol(api_key: int, m: Any, version: int, own: str, response: bool) -> None:
    if hasattr(m, "protocol_type"):
        m.protocol_type = "consumer"
    if api_key == 11 and not response:
        for p in m.protocols:
            p.metadata = consumer_subscription(["orders"])
    if api_key == 11 and response:
        for member in m.members:
            member.metadata = consumer_subscription([own + "orders"])
    if api_key == 14 and not response:
        for a in m.assignments:
            a.assignment = consumer_assignment("orders")
    if api_key == 14 and response:
        m.assignment = consumer_assignment(own + "orders")
    if api_key == 15 and response:
        for g in m.groups:
            g.protocol_type = "consumer"
            for member in g.members:
                member.member_metadata = consumer_subscription([own + "orders"])
                member.member_assignment = consumer_assignment(own + "orders")
                member.client_id = own + "app"


def _broker_resource(m: Any) -> None:
    m.resources[0].resource_type, m.resources[0].resource_name = 4, "1"


def _broker_resource_beside_own(m: Any) -> None:
    broker = copy.deepcopy(m.resources[0])
    broker.resource_type, broker.resource_name = 4, "1"
    m.resources.append(broker)


def _anchored_regex(m: Any) -> None:
    if hasattr(m, "subscribed_topic_regex"):
        m.subscribed_topic_regex = "(^orders)|(^audit-.*)"


def _foreign_topic_id(m: Any) -> None:
    m.topics[0].topic_id = TOPIC_IDS["globex"] if m.topics[0].topic_id == TOPIC_IDS["acme"] else TOPIC_IDS["acme"]


def _invalid_regex(m: Any) -> None:
    if hasattr(m, "subscribed_topic_regex"):
        m.subscribed_topic_regex = "x)|(.*"


#: Extra cases per API: a variant name and what it changes in the request (at the highest version).
_BROKER_RESOURCES = [("a broker resource", _broker_resource),
                     ("a broker resource beside the tenant's own", _broker_resource_beside_own)]

VARIANTS: dict[int, list[tuple[str, Any]]] = {
    1: [("the other tenant's topic id", _foreign_topic_id)],
    32: _BROKER_RESOURCES,
    33: _BROKER_RESOURCES,
    44: _BROKER_RESOURCES,
    68: [("a regex that would escape its group", _invalid_regex), ("an anchored regex", _anchored_regex)],
}
