"""APIs whose messages a tenant rewrite must restructure, not just splice (typed hooks, see :mod:`.hooks`).

Request hooks run after every entity field has been given the tenant's prefix; they fix fields the
schemas do not mark (coordinator keys, config resource names, embedded consumer-protocol bytes,
regexes, listing cursors). Response hooks run before names are stripped; they drop what the tenant
does not own from listings and undo the request hooks' changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages.alter_configs_request import AlterConfigsRequest
from tenantry.protocol.messages.alter_configs_response import AlterConfigsResourceResponse, AlterConfigsResponse
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.consumer_group_describe_response import ConsumerGroupDescribeResponse
from tenantry.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
from tenantry.protocol.messages.consumer_group_heartbeat_response import ConsumerGroupHeartbeatResponse
from tenantry.protocol.messages.describe_configs_request import DescribeConfigsRequest
from tenantry.protocol.messages.describe_configs_response import DescribeConfigsResponse, DescribeConfigsResult
from tenantry.protocol.messages.describe_groups_response import DescribeGroupsResponse
from tenantry.protocol.messages.describe_topic_partitions_request import Cursor, DescribeTopicPartitionsRequest
from tenantry.protocol.messages.describe_topic_partitions_response import DescribeTopicPartitionsResponse
from tenantry.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from tenantry.protocol.messages.find_coordinator_response import Coordinator, FindCoordinatorResponse
from tenantry.protocol.messages.incremental_alter_configs_request import IncrementalAlterConfigsRequest
from tenantry.protocol.messages.incremental_alter_configs_response import (
    AlterConfigsResourceResponse as IncrementalResourceResponse,
)
from tenantry.protocol.messages.incremental_alter_configs_response import IncrementalAlterConfigsResponse
from tenantry.protocol.messages.join_group_request import JoinGroupRequest
from tenantry.protocol.messages.join_group_response import JoinGroupResponse
from tenantry.protocol.messages.list_groups_response import ListGroupsResponse
from tenantry.protocol.messages.list_transactions_request import ListTransactionsRequest
from tenantry.protocol.messages.list_transactions_response import ListTransactionsResponse
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.protocol.messages.metadata_response import MetadataResponse
from tenantry.protocol.messages.sync_group_request import SyncGroupRequest
from tenantry.protocol.messages.sync_group_response import SyncGroupResponse
from tenantry.protocol.schema import Message
from tenantry.proxy.rewrite import embedded
from tenantry.proxy.rewrite.hooks import Refusal, on_request, on_response
from tenantry.proxy.rewrite.regex import InvalidRegex, confine, unconfine

if TYPE_CHECKING:
    from tenantry.proxy.rewrite.rewriter import RequestContext, Rewriter

__all__ = ["Refusal"]
TOPIC_RESOURCE, GROUP_RESOURCE = 2, 32
GROUP_KEY, TRANSACTION_KEY = 0, 1


# -- Metadata ---------------------------------------------------------------------------------------
@on_request(ApiKey.METADATA)
def metadata_request(rw: Rewriter, m: MetadataRequest, version: int, ctx: RequestContext) -> None:
    ctx.listing = m.topics is None or (version == 0 and not m.topics)
    if version >= 4:  # explicit topic creation unless the tenant's policy allows it
        m.allow_auto_topic_creation = m.allow_auto_topic_creation and rw.allow_auto_create


@on_response(ApiKey.METADATA)
def metadata_response(rw: Rewriter, m: MetadataResponse, version: int, ctx: RequestContext) -> None:
    # Entries without a name answer a request by topic id (UNKNOWN_TOPIC_ID for foreign ids): keep them.
    m.topics = [t for t in m.topics if rw.owns(t.name) or (not t.name and not ctx.listing)]


# -- FindCoordinator --------------------------------------------------------------------------------
@on_request(ApiKey.FIND_COORDINATOR)
def find_coordinator_request(rw: Rewriter, m: FindCoordinatorRequest, version: int, ctx: RequestContext) -> None:
    if m.key_type not in (GROUP_KEY, TRANSACTION_KEY):
        raise Refusal(_find_coordinator_refusal(m, version))
    if version <= 3:
        m.key = rw.to_cluster(m.key)
    else:
        m.coordinator_keys = [rw.to_cluster(k) for k in m.coordinator_keys]


def _find_coordinator_refusal(m: FindCoordinatorRequest, version: int) -> FindCoordinatorResponse:
    error, message = ErrorCode.INVALID_REQUEST, "share group coordinators are not offered by this proxy"
    if version <= 3:
        return FindCoordinatorResponse(error_code=error, error_message=message, node_id=-1, host="", port=-1)
    return FindCoordinatorResponse(coordinators=[Coordinator(key=k, node_id=-1, host="", port=-1, error_code=error,
                                                             error_message=message) for k in m.coordinator_keys])


@on_response(ApiKey.FIND_COORDINATOR)
def find_coordinator_response(rw: Rewriter, m: FindCoordinatorResponse, version: int, ctx: RequestContext) -> None:
    for c in m.coordinators:
        c.key = rw.outbound("groupId", c.key)


# -- Classic groups: embedded consumer protocol -----------------------------------------------------
def _is_consumer(protocol_type: str | None) -> bool:
    return protocol_type == "consumer"


def _strip(rw: Rewriter) -> Callable[[str], str]:
    return lambda name: str(rw.outbound("topicName", name))


@on_request(ApiKey.JOIN_GROUP)
def join_group_request(rw: Rewriter, m: JoinGroupRequest, version: int, ctx: RequestContext) -> None:
    rw.group_protocols[m.group_id] = m.protocol_type  # SyncGroup before v5 does not repeat it
    ctx.protocol_type = m.protocol_type
    if _is_consumer(m.protocol_type):
        for p in m.protocols:
            p.metadata = embedded.subscription(p.metadata, rw.to_cluster) or b""


@on_response(ApiKey.JOIN_GROUP)
def join_group_response(rw: Rewriter, m: JoinGroupResponse, version: int, ctx: RequestContext) -> None:
    if _is_consumer(ctx.protocol_type):
        for member in m.members:
            member.metadata = embedded.subscription(member.metadata, _strip(rw)) or b""


@on_request(ApiKey.SYNC_GROUP)
def sync_group_request(rw: Rewriter, m: SyncGroupRequest, version: int, ctx: RequestContext) -> None:
    ctx.protocol_type = m.protocol_type if version >= 5 else rw.group_protocols.get(m.group_id)
    if _is_consumer(ctx.protocol_type):
        for a in m.assignments:
            a.assignment = embedded.assignment(a.assignment, rw.to_cluster) or b""


@on_response(ApiKey.SYNC_GROUP)
def sync_group_response(rw: Rewriter, m: SyncGroupResponse, version: int, ctx: RequestContext) -> None:
    if _is_consumer(ctx.protocol_type):
        m.assignment = embedded.assignment(m.assignment, _strip(rw)) or b""


class _Member(Protocol):
    client_id: str


def _strip_client_id(rw: Rewriter, member: _Member) -> None:
    # The broker saw the client id with the tenant's prefix in front; the tenant sees its own.
    if member.client_id:
        member.client_id = member.client_id.removeprefix(rw.prefix)


@on_response(ApiKey.DESCRIBE_GROUPS)
def describe_groups_response(rw: Rewriter, m: DescribeGroupsResponse, version: int, ctx: RequestContext) -> None:
    for group in m.groups:
        for member in group.members:
            _strip_client_id(rw, member)
        if _is_consumer(group.protocol_type):
            for member in group.members:
                member.member_metadata = embedded.subscription(member.member_metadata, _strip(rw)) or b""
                member.member_assignment = embedded.assignment(member.member_assignment, _strip(rw)) or b""


# -- Listings ---------------------------------------------------------------------------------------
@on_response(ApiKey.LIST_GROUPS)
def list_groups_response(rw: Rewriter, m: ListGroupsResponse, version: int, ctx: RequestContext) -> None:
    m.groups = [g for g in m.groups if rw.owns(g.group_id)]


@on_response(ApiKey.LIST_TRANSACTIONS)
def list_transactions_response(rw: Rewriter, m: ListTransactionsResponse, version: int, ctx: RequestContext) -> None:
    m.transaction_states = [t for t in m.transaction_states if rw.owns(t.transactional_id)]


@on_request(ApiKey.LIST_TRANSACTIONS)
def list_transactions_request(rw: Rewriter, m: ListTransactionsRequest, version: int, ctx: RequestContext) -> None:
    if m.transactional_id_pattern:  # v2: confine the pattern to the tenant's ids
        try:
            m.transactional_id_pattern = confine(m.transactional_id_pattern, rw.prefix)
        except InvalidRegex:
            m.transactional_id_pattern = "(?!)"  # matches nothing: an invalid pattern lists nothing


# -- Configs ----------------------------------------------------------------------------------------
def _tenant_resources(rw: Rewriter, resources: list[Any], ctx: RequestContext, result: Callable[..., Any]) -> list[Any]:
    """The tenant's own topics and groups, named on the cluster; the rest are denied one by one, as a
    broker authorizes each resource on its own, and their results wait in `ctx` for the broker's answer."""
    kept = []
    for r in resources:
        if r.resource_type in (TOPIC_RESOURCE, GROUP_RESOURCE):
            r.resource_name = rw.to_cluster(r.resource_name)
            kept.append(r)
        else:
            ctx.denied.append(result(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                                     error_message="only topic and group configs are available to tenants",
                                     resource_type=r.resource_type, resource_name=r.resource_name))
    if not kept:
        raise Refusal(_config_answer(result, ctx.denied))
    return kept


_CONFIG_ANSWERS: dict[Any, tuple[type[Message], str]] = {
    DescribeConfigsResult: (DescribeConfigsResponse, "results"),
    AlterConfigsResourceResponse: (AlterConfigsResponse, "responses"),
    IncrementalResourceResponse: (IncrementalAlterConfigsResponse, "responses"),
}


def _config_answer(result: Callable[..., Any], results: list[Any]) -> Message:
    response, field_name = _CONFIG_ANSWERS[result]
    return response(**{field_name: results})


@on_request(ApiKey.DESCRIBE_CONFIGS)
def describe_configs_request(rw: Rewriter, m: DescribeConfigsRequest, version: int, ctx: RequestContext) -> None:
    m.resources = _tenant_resources(rw, m.resources, ctx, DescribeConfigsResult)


@on_request(ApiKey.ALTER_CONFIGS)
def alter_configs_request(rw: Rewriter, m: AlterConfigsRequest, version: int, ctx: RequestContext) -> None:
    m.resources = _tenant_resources(rw, m.resources, ctx, AlterConfigsResourceResponse)


@on_request(ApiKey.INCREMENTAL_ALTER_CONFIGS)
def incremental_alter_configs_request(rw: Rewriter, m: IncrementalAlterConfigsRequest, version: int,
                                      ctx: RequestContext) -> None:
    m.resources = _tenant_resources(rw, m.resources, ctx, IncrementalResourceResponse)


def _answer_resources(rw: Rewriter, resources: list[Any], ctx: RequestContext) -> None:
    for r in resources:
        r.resource_name = rw.outbound("topicName", r.resource_name)
    resources.extend(ctx.denied)


@on_response(ApiKey.DESCRIBE_CONFIGS)
def describe_configs_response(rw: Rewriter, m: DescribeConfigsResponse, version: int, ctx: RequestContext) -> None:
    _answer_resources(rw, m.results, ctx)


@on_response(ApiKey.ALTER_CONFIGS)
def alter_configs_response(rw: Rewriter, m: AlterConfigsResponse, version: int, ctx: RequestContext) -> None:
    _answer_resources(rw, m.responses, ctx)


@on_response(ApiKey.INCREMENTAL_ALTER_CONFIGS)
def incremental_alter_configs_response(rw: Rewriter, m: IncrementalAlterConfigsResponse, version: int,
                                       ctx: RequestContext) -> None:
    _answer_resources(rw, m.responses, ctx)


# -- KIP-848 ----------------------------------------------------------------------------------------
@on_request(ApiKey.CONSUMER_GROUP_HEARTBEAT)
def consumer_heartbeat_request(rw: Rewriter, m: ConsumerGroupHeartbeatRequest, version: int,
                               ctx: RequestContext) -> None:
    if m.subscribed_topic_regex:
        try:
            confined = confine(m.subscribed_topic_regex, rw.prefix)
        except InvalidRegex as exc:
            raise Refusal(ConsumerGroupHeartbeatResponse(error_code=ErrorCode.INVALID_REGULAR_EXPRESSION,
                                                         error_message=str(exc))) from None
        ctx.regex = (confined, m.subscribed_topic_regex)
        m.subscribed_topic_regex = confined


@on_response(ApiKey.CONSUMER_GROUP_HEARTBEAT)
def consumer_heartbeat_response(rw: Rewriter, m: ConsumerGroupHeartbeatResponse, version: int,
                                ctx: RequestContext) -> None:
    # The broker's message may quote the regex it got, which carries the tenant's (escaped) prefix.
    if ctx.regex is not None and m.error_message:
        m.error_message = m.error_message.replace(*ctx.regex)


@on_response(ApiKey.CONSUMER_GROUP_DESCRIBE)
def consumer_describe_response(rw: Rewriter, m: ConsumerGroupDescribeResponse, version: int,
                               ctx: RequestContext) -> None:
    for group in m.groups:
        for member in group.members:
            _strip_client_id(rw, member)
            if member.subscribed_topic_regex:
                member.subscribed_topic_regex = unconfine(member.subscribed_topic_regex, rw.prefix)


# -- DescribeTopicPartitions: a listing with a cursor -----------------------------------------------
@on_request(ApiKey.DESCRIBE_TOPIC_PARTITIONS)
def describe_topic_partitions_request(rw: Rewriter, m: DescribeTopicPartitionsRequest, version: int,
                                      ctx: RequestContext) -> None:
    if not m.topics:  # all topics: the broker sorts names, so start at the tenant's prefix
        ctx.listing = True
        if m.cursor is None:
            m.cursor = Cursor(topic_name=rw.prefix, partition_index=0)


@on_response(ApiKey.DESCRIBE_TOPIC_PARTITIONS)
def describe_topic_partitions_response(rw: Rewriter, m: DescribeTopicPartitionsResponse, version: int,
                                       ctx: RequestContext) -> None:
    owned = [t for t in m.topics if rw.owns(t.name)]
    ended = len(owned) < len(m.topics)
    m.topics = owned
    if m.next_cursor is not None and (ended or not rw.owns(m.next_cursor.topic_name)):
        m.next_cursor = None  # past the tenant's names: the listing is complete
