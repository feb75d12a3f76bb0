"""Stage: no Metadata request creates a topic behind the guard rails' (or the tenant's ACLs') back.

Metadata v4+ carries AllowAutoTopicCreation, which the rewriting turns off unless the tenant allows it.
Before v4 the broker creates every unknown topic a Metadata request names, if its
auto.create.topics.enable is on (the default). For a tenant without auto-creation, or a user its ACLs
do not let create the topics, the proxy asks the broker first which of the named topics exist (without
creating any), forwards the request for those only, and answers UNKNOWN_TOPIC_OR_PARTITION for the
rest, as for v4+. Metadata v0, whose empty topic list means every topic, is not offered to tenants (see
:mod:`..rewrite.policy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol import ErrorCode, ProtocolError, decode, encode
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from tenantry.protocol.messages.metadata_response import MetadataResponse, MetadataResponseTopic
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.guard import merge_refused
from tenantry.proxy.outcomes import Close, Outcome, Suspend
from tenantry.proxy.stages import acts_on
from tenantry.proxy.stages.authorization import may_create_topics
from tenantry.proxy.upstream import UpstreamError
from tenantry.tenants.naming import InvalidName
from tenantry.tenants.registry import Tenant

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

FIRST_WITH_THE_FLAG = 4  # AllowAutoTopicCreation


@acts_on(ApiKey.METADATA)
def metadata(ex: Exchange, ctx: StageContext) -> Outcome | None:
    if ex.api_key != ApiKey.METADATA or ex.api_version >= FIRST_WITH_THE_FLAG:
        return None
    tenant = ctx.tenant()
    if tenant is None or (tenant.allow_auto_create_topics and tenant.authorization == "open"):
        return None  # no limit on who creates: nothing to decode
    request = decode(MetadataRequest, ex.body, ex.api_version)
    if not request.topics:
        return None  # all topics (null) or none: nothing to create
    if tenant.allow_auto_create_topics and may_create_topics(ctx, tenant, [t.name for t in request.topics if t.name]):
        return None
    return Suspend(_existing_only(ex, ctx, tenant, request))


async def _existing_only(ex: Exchange, ctx: StageContext, tenant: Tenant, request: MetadataRequest) -> Outcome | None:
    topics = request.topics or []
    named = {t.name: _cluster_name(tenant, t.name) for t in topics if t.name}
    asked = [MetadataRequestTopic(name=n) for n in named.values() if n is not None]
    broker = ctx.broker()
    try:
        answer: MetadataResponse = await broker.request(MetadataRequest(
            topics=asked, allow_auto_topic_creation=False), min(12, broker.table[ApiKey.METADATA].hi or 12))
    except (UpstreamError, ProtocolError) as exc:
        return Close(f"cannot check which topics exist: {exc}", ex.api_key)
    missing = {t.name for t in answer.topics if t.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    unknown = [name for name, cluster in named.items() if cluster in missing]
    if not unknown:
        return None
    assert ex.header is not None
    request.topics = [t for t in topics if t.name not in unknown]
    ex.frame = memoryview(bytes(ex.frame[:ex.header.body_offset]) + encode(request, ex.api_version))
    ex.refused = [MetadataResponseTopic(name=name, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                  for name in unknown]
    ex.on_response(_add_unknown)
    return None


def _cluster_name(tenant: Tenant, name: str) -> str | None:
    """The cluster name, or None for a name the broker refuses anyway (it creates nothing for those)."""
    try:
        return tenant.namespace.to_cluster(name)
    except InvalidName:
        return None


def _add_unknown(ex: Exchange, ctx: StageContext) -> None:
    """The topics left out of the request are answered as unknown, after the broker's (already stripped) ones."""
    assert ex.chunks is not None
    ex.chunks = merge_refused(ex.api_key, ex.api_version, ex.chunks, ex.body_offset - 4, ex.refused)
