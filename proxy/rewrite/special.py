"""APIs whose messages a tenant rewrite must restructure, not just splice.

Request handlers run after every entity field has been given the tenant's prefix; they fix fields
the schemas do not mark (coordinator keys, config resource names, embedded consumer-protocol bytes,
regexes, listing cursors). Response handlers run before names are stripped; they drop what the tenant
does not own from listings and undo the request handlers' changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tenantry.protocol.errors import ErrorCode
from tenantry.proxy.rewrite import embedded
from tenantry.proxy.rewrite.regex import InvalidRegex, confine, unconfine

if TYPE_CHECKING:
    from tenantry.proxy.rewrite.rewriter import RequestContext, Rewriter

Handler = Callable[["Rewriter", Any, int, "RequestContext"], None]
TOPIC_RESOURCE, GROUP_RESOURCE = 2, 32
GROUP_KEY, TRANSACTION_KEY = 0, 1


class Refusal(Exception):
    """The request is answered by the proxy with an error; `response` is that answer."""

    def __init__(self, response: Any) -> None:
        super().__init__("refused")
        self.response = response


# -- Metadata (3) ---------------------------------------------------------------------------------
def metadata_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    ctx.listing = m.topics is None or (version == 0 and not m.topics)
    if version >= 4:  # explicit topic creation unless the tenant's policy allows it
        m.allow_auto_topic_creation = m.allow_auto_topic_creation and rw.allow_auto_create


def metadata_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    # Entries without a name answer a request by topic id (UNKNOWN_TOPIC_ID for foreign ids): keep them.
    m.topics = [t for t in m.topics if rw.owns(t.name) or (not t.name and not ctx.listing)]


# -- FindCoordinator (10) -------------------------------------------------------------------------
def find_coordinator_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    if m.key_type not in (GROUP_KEY, TRANSACTION_KEY):
        raise Refusal(_find_coordinator_refusal(m, version))
    if version <= 3:
        m.key = rw.to_cluster(m.key)
    else:
        m.coordinator_keys = [rw.to_cluster(k) for k in m.coordinator_keys]


def _find_coordinator_refusal(m: Any, version: int) -> Any:
    from tenantry.protocol.messages.find_coordinator_response import Coordinator, FindCoordinatorResponse

    error, message = ErrorCode.INVALID_REQUEST, "share group coordinators are not offered by this proxy"
    if version <= 3:
        return FindCoordinatorResponse(error_code=error, error_message=message, node_id=-1, host="", port=-1)
    return FindCoordinatorResponse(coordinators=[Coordinator(key=k, node_id=-1, host="", port=-1, error_code=error,
                                                             error_message=message) for k in m.coordinator_keys])


def find_coordinator_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    for c in m.coordinators:
        c.key = rw.outbound("groupId", c.key)


# -- Classic groups: embedded consumer protocol (11, 14, 15) --------------------------------------
def _is_consumer(protocol_type: str | None) -> bool:
    return protocol_type == "consumer"


def join_group_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    rw.group_protocols[m.group_id] = m.protocol_type  # SyncGroup before v5 does not repeat it
    ctx.protocol_type = m.protocol_type
    if _is_consumer(m.protocol_type):
        for p in m.protocols:
            p.metadata = embedded.subscription(p.metadata, rw.to_cluster)


def join_group_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    if _is_consumer(ctx.protocol_type):
        for member in m.members:
            member.metadata = embedded.subscription(member.metadata, lambda n: rw.outbound("topicName", n))


def sync_group_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    ctx.protocol_type = m.protocol_type if version >= 5 else rw.group_protocols.get(m.group_id)
    if _is_consumer(ctx.protocol_type):
        for a in m.assignments:
            a.assignment = embedded.assignment(a.assignment, rw.to_cluster)


def sync_group_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    if _is_consumer(ctx.protocol_type):
        m.assignment = embedded.assignment(m.assignment, lambda n: rw.outbound("topicName", n))


def _strip_client_id(rw: Rewriter, member: Any) -> None:
    # The broker saw the client id with the tenant's prefix in front; the tenant sees its own.
    if getattr(member, "client_id", None):
        member.client_id = member.client_id.removeprefix(rw.prefix)


def describe_groups_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    for group in m.groups:
        for member in group.members:
            _strip_client_id(rw, member)
        if _is_consumer(group.protocol_type):
            for member in group.members:
                member.member_metadata = embedded.subscription(
                    member.member_metadata, lambda n: rw.outbound("topicName", n))
                member.member_assignment = embedded.assignment(
                    member.member_assignment, lambda n: rw.outbound("topicName", n))


# -- Listings (16, 66) ----------------------------------------------------------------------------
def list_groups_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    m.groups = [g for g in m.groups if rw.owns(g.group_id)]


def list_transactions_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    m.transaction_states = [t for t in m.transaction_states if rw.owns(t.transactional_id)]


def list_transactions_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    if getattr(m, "transactional_id_pattern", None):  # v2: confine the pattern to the tenant's ids
        try:
            m.transactional_id_pattern = confine(m.transactional_id_pattern, rw.prefix)
        except InvalidRegex:
            m.transactional_id_pattern = "(?!)"  # matches nothing: an invalid pattern lists nothing


# -- Configs (32, 33, 44) -------------------------------------------------------------------------
def _config_resources(rw: Rewriter, resources: list[Any], refusal: Callable[[list[Any]], Any]) -> None:
    if any(r.resource_type not in (TOPIC_RESOURCE, GROUP_RESOURCE) for r in resources):
        raise Refusal(refusal(resources))
    for r in resources:
        r.resource_name = rw.to_cluster(r.resource_name)


def _denied(r: Any) -> tuple[int, str]:
    if r.resource_type in (TOPIC_RESOURCE, GROUP_RESOURCE):
        return ErrorCode.INVALID_REQUEST, "not processed: the request also named a resource tenants may not use"
    return ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "only topic and group configs are available to tenants"


def describe_configs_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    from tenantry.protocol.messages.describe_configs_response import DescribeConfigsResponse, DescribeConfigsResult

    _config_resources(rw, m.resources, lambda rs: DescribeConfigsResponse(results=[DescribeConfigsResult(
        *_denied(r), resource_type=r.resource_type, resource_name=r.resource_name) for r in rs]))


def alter_configs_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    from tenantry.protocol.messages.alter_configs_response import AlterConfigsResourceResponse, AlterConfigsResponse

    _config_resources(rw, m.resources, lambda rs: AlterConfigsResponse(responses=[AlterConfigsResourceResponse(
        *_denied(r), resource_type=r.resource_type, resource_name=r.resource_name) for r in rs]))


def incremental_alter_configs_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    from tenantry.protocol.messages.incremental_alter_configs_response import (
        AlterConfigsResourceResponse,
        IncrementalAlterConfigsResponse,
    )

    _config_resources(rw, m.resources, lambda rs: IncrementalAlterConfigsResponse(responses=[
        AlterConfigsResourceResponse(*_denied(r), resource_type=r.resource_type, resource_name=r.resource_name)
        for r in rs]))


def configs_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    for r in getattr(m, "results", None) or getattr(m, "responses", []):
        r.resource_name = rw.outbound("topicName", r.resource_name)


# -- KIP-848 (68, 69) -----------------------------------------------------------------------------
def consumer_heartbeat_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    from tenantry.protocol.messages.consumer_group_heartbeat_response import ConsumerGroupHeartbeatResponse

    if getattr(m, "subscribed_topic_regex", None):
        try:
            m.subscribed_topic_regex = confine(m.subscribed_topic_regex, rw.prefix)
        except InvalidRegex as exc:
            raise Refusal(ConsumerGroupHeartbeatResponse(error_code=ErrorCode.INVALID_REGULAR_EXPRESSION,
                                                         error_message=str(exc))) from None


def consumer_describe_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    for group in m.groups:
        for member in group.members:
            _strip_client_id(rw, member)
            if getattr(member, "subscribed_topic_regex", None):
                member.subscribed_topic_regex = unconfine(member.subscribed_topic_regex, rw.prefix)


# -- DescribeTopicPartitions (75): a listing with a cursor ----------------------------------------
def describe_topic_partitions_request(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    from tenantry.protocol.messages.describe_topic_partitions_request import Cursor

    if not m.topics:  # all topics: the broker sorts names, so start at the tenant's prefix
        ctx.listing = True
        if m.cursor is None:
            m.cursor = Cursor(topic_name=rw.prefix, partition_index=0)


def describe_topic_partitions_response(rw: Rewriter, m: Any, version: int, ctx: RequestContext) -> None:
    owned = [t for t in m.topics if rw.owns(t.name)]
    ended = len(owned) < len(m.topics)
    m.topics = owned
    if m.next_cursor is not None and (ended or not rw.owns(m.next_cursor.topic_name)):
        m.next_cursor = None  # past the tenant's names: the listing is complete


REQUESTS: dict[int, Handler] = {
    3: metadata_request,
    10: find_coordinator_request,
    11: join_group_request,
    14: sync_group_request,
    32: describe_configs_request,
    33: alter_configs_request,
    44: incremental_alter_configs_request,
    66: list_transactions_request,
    68: consumer_heartbeat_request,
    75: describe_topic_partitions_request,
}

RESPONSES: dict[int, Handler] = {
    3: metadata_response,
    10: find_coordinator_response,
    11: join_group_response,
    14: sync_group_response,
    15: describe_groups_response,
    16: list_groups_response,
    32: configs_response,
    33: configs_response,
    44: configs_response,
    66: list_transactions_response,
    69: consumer_describe_response,
    75: describe_topic_partitions_response,
}
