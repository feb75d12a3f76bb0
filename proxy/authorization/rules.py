"""Per-API authorization rules, as Kafka's KafkaApis applies them, registered by API key.

A rule gets the decoded request (the tenant's own names), its version, the :class:`~.check.Check` to ask,
and a way to name a topic id. It returns None when everything is allowed, or a :class:`Verdict`: refuse
the whole request, or forward it without the refused items (their errors merged into the response),
and perhaps filter the response (listings show only what the user may DESCRIBE).

Every API offered to tenants has a rule or is listed in :data:`UNCHECKED`; a test holds the two to it,
so a new API cannot reach the broker unchecked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.schema import Message
from tenantry.proxy.authorization.check import Check
from tenantry.proxy.authorization.shapes import element_class, error_response, items_response, refused_item
from tenantry.tenants.acls import Operation, ResourceType

NameOf = Callable[[uuid.UUID], "str | None"]
#: A response filter: runs on the decoded response, after the tenant rewrite stripped its names.
ResponseFilter = Callable[[Any, int], None]


@dataclass
class Verdict:
    answer: Message | None = None  # refuse the whole request with this answer
    request: Message | None = None  # forward this, changed (refused items taken out)
    into: str = ""  # the response's list the refused items' entries join
    refused: list[Any] = field(default_factory=list)
    response_filter: ResponseFilter | None = None


Rule = Callable[[Any, int, Check, NameOf], "Verdict | None"]
RULES: dict[int, Rule] = {}
#: Offered to tenants and needing no ACL, as on a broker (login, version discovery).
UNCHECKED = frozenset({ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE})
R = TypeVar("R", bound=Rule)


def rule(*keys: ApiKey) -> Callable[[R], R]:
    def register(fn: R) -> R:
        for key in keys:
            assert key not in RULES, f"{key.name} has two rules"
            RULES[key] = fn
        return fn
    return register


TOPIC, GROUP, CLUSTER, TXN = (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER,
                              ResourceType.TRANSACTIONAL_ID)


def topic_name(item: Any, name_of: NameOf) -> str | None:
    """The tenant's name of a request's topic entry: its name, or the name its topic id is known by."""
    if isinstance(item, str):
        return item
    name = getattr(item, "name", None) or getattr(item, "topic", None)
    if name:
        return str(name)
    topic_id = getattr(item, "topic_id", None)
    return name_of(topic_id) if topic_id is not None else None


def refuse_items(api_key: int, m: Any, items: str, response_field: str, error: int, denied: Callable[[Any], bool],
                 forward_empty: bool = False, **answer_values: Any) -> Verdict | None:
    """Take the items of `m.<items>` that `denied` says no to out of the request, each answered with `error`
    in the response's `response_field`. With every item refused, the proxy answers alone, unless
    `forward_empty` (the response carries more than the items: Metadata's brokers)."""
    cls = element_class(RESPONSES[api_key], response_field)
    kept, refused = [], []
    for item in getattr(m, items):
        if denied(item):
            refused.append(refused_item(cls, item, error))
        else:
            kept.append(item)
    if not refused:
        return None
    setattr(m, items, kept)
    if not kept and not forward_empty:
        return Verdict(answer=items_response(api_key, response_field, refused, **answer_values))
    return Verdict(request=m, into=response_field, refused=refused)


def per_topic(api_key: int, m: Any, check: Check, name_of: NameOf, operation: Operation, items: str,
              response_field: str, **kwargs: Any) -> Verdict | None:
    """Refuse, with TOPIC_AUTHORIZATION_FAILED, the topics of `m.<items>` the user may not `operation`; a
    topic id no one knows is left for the tenant rewrite (the broker answers UNKNOWN_TOPIC_ID)."""
    def denied(item: Any) -> bool:
        name = topic_name(item, name_of)
        return name is not None and not check(operation, TOPIC, name)
    return refuse_items(api_key, m, items, response_field, ErrorCode.TOPIC_AUTHORIZATION_FAILED, denied, **kwargs)


def per_name(api_key: int, m: Any, check: Check, operation: Operation, resource_type: ResourceType, items: str,
             response_field: str, error: int) -> Verdict | None:
    """Refuse the names in the list `m.<items>` (group or transactional ids) the user may not `operation`."""
    return refuse_items(api_key, m, items, response_field, error,
                        lambda name: not check(operation, resource_type, name))


def every_item_refused(api_key: int, m: Any, items: str, response_field: str, error: int,
                       **answer_values: Any) -> Verdict:
    """Refuse every item the request names with `error` (its group or transactional id was refused)."""
    cls = element_class(RESPONSES[api_key], response_field)
    refused = [refused_item(cls, item, error) for item in getattr(m, items)]
    return Verdict(answer=items_response(api_key, response_field, refused, **answer_values))


def whole(api_key: int, error: int, message: str | None = None, **values: Any) -> Verdict:
    return Verdict(answer=error_response(api_key, error, message, **values))
