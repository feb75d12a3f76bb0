"""Stage: cluster-wide listings a tenant may read, answered as its own cluster would answer them.

- **DescribeClientQuotas** comes from the proxy, not the broker: the broker's quotas are the service
  user's, while the ones a tenant lives under are the proxy's. The tenant sees an entity `tenant=<id>`
  with its tenant-wide quotas (the rate in force: configured, or the auto-tuner's lower share) and one
  `user=<name>` entity per user of its own with a quota of its own. Keys are Kafka's where Kafka has
  one (`producer_byte_rate`, `consumer_byte_rate`, `connection_creation_rate`); `request_rate`
  (requests per second) and `max_connections` are the proxy's.
- **ListConfigResources** lists the tenant's topics and groups, names stripped. The broker's own answer
  needs cluster-wide rights and would list every tenant's, so the proxy builds it from Metadata and
  ListGroups, asked as the tenant. Version 0 lists client-metrics resources, which are the operator's:
  the list is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol import ProtocolError, decode
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.describe_client_quotas_request import ComponentData, DescribeClientQuotasRequest
from tenantry.protocol.messages.describe_client_quotas_response import (
    DescribeClientQuotasResponse,
    EntityData,
    EntryData,
    ValueData,
)
from tenantry.protocol.messages.list_config_resources_request import ListConfigResourcesRequest
from tenantry.protocol.messages.list_config_resources_response import ConfigResource, ListConfigResourcesResponse
from tenantry.protocol.messages.list_groups_request import ListGroupsRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, Close, Outcome, Suspend
from tenantry.proxy.stages import acts_on
from tenantry.proxy.upstream import UpstreamError
from tenantry.tenants.quotas import CONNECTIONS, FETCH, PRODUCE, REQUESTS
from tenantry.tenants.registry import Tenant

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

TOPIC, GROUP = 2, 32  # config resource types
EXACT, DEFAULT, ANY = 0, 1, 2  # DescribeClientQuotas match types
QUOTA_KEYS = {PRODUCE: "producer_byte_rate", FETCH: "consumer_byte_rate", REQUESTS: "request_rate",
              CONNECTIONS: "connection_creation_rate"}


@acts_on(ApiKey.DESCRIBE_CLIENT_QUOTAS)
def client_quotas(ex: Exchange, ctx: StageContext) -> Outcome | None:
    if ex.api_key != ApiKey.DESCRIBE_CLIENT_QUOTAS:  # the route sends only these; a direct caller may not
        return None
    tenant = ctx.tenant()
    if tenant is None:
        return None
    request = decode(DescribeClientQuotasRequest, ex.body, ex.api_version)
    entries = [entry for entry in _quota_entries(tenant, ctx) if _wanted(entry, request.components, request.strict)]
    return Answer(DescribeClientQuotasResponse(entries=entries))


def _quota_entries(tenant: Tenant, ctx: StageContext) -> list[EntryData]:
    meters = ctx.quotas.for_tenant(tenant)
    rates = {resource: meters.effective_rate(resource) for resource in QUOTA_KEYS}
    entries = [_entry("tenant", tenant.id, rates, tenant.quotas.max_connections)]
    for user, spec in sorted(tenant.user_quotas.items()):
        entries.append(_entry("user", user, {r: spec.rate(r) for r in QUOTA_KEYS}, spec.max_connections))
    return [e for e in entries if e.values]


def _entry(entity_type: str, name: str, rates: dict[str, float | None], max_connections: int | None) -> EntryData:
    values = [ValueData(key=QUOTA_KEYS[r], value=float(rate)) for r, rate in rates.items() if rate is not None]
    if max_connections is not None:
        values.append(ValueData(key="max_connections", value=float(max_connections)))
    return EntryData(entity=[EntityData(entity_type=entity_type, entity_name=name)], values=values)


def _wanted(entry: EntryData, components: list[ComponentData], strict: bool) -> bool:
    names = {e.entity_type: e.entity_name for e in entry.entity}
    for c in components:
        if c.entity_type not in names:
            return False
        if c.match_type == EXACT and names[c.entity_type] != c.match:
            return False
        if c.match_type == DEFAULT and names[c.entity_type] is not None:
            return False
    return not strict or set(names) == {c.entity_type for c in components}


@acts_on(ApiKey.LIST_CONFIG_RESOURCES)
def config_resources(ex: Exchange, ctx: StageContext) -> Outcome | None:
    if ex.api_key != ApiKey.LIST_CONFIG_RESOURCES:
        return None
    tenant = ctx.tenant()
    if tenant is None:
        return None
    request = decode(ListConfigResourcesRequest, ex.body, ex.api_version)
    if ex.api_version == 0:
        return Answer(ListConfigResourcesResponse())  # client-metrics resources only: none are the tenant's
    types = {TOPIC, GROUP} & set(request.resource_types or (TOPIC, GROUP))
    if not types:
        return Answer(ListConfigResourcesResponse())
    return Suspend(_list_config_resources(ex, ctx, tenant, types))


async def _list_config_resources(ex: Exchange, ctx: StageContext, tenant: Tenant, types: set[int]) -> Outcome:
    broker = ctx.broker()
    names: list[tuple[str, int]] = []
    try:
        if TOPIC in types:
            version = min(12, broker.table[ApiKey.METADATA].hi or 12)
            metadata = await broker.request(MetadataRequest(topics=None, allow_auto_topic_creation=False), version)
            names += [(t.name, TOPIC) for t in metadata.topics if t.name and t.error_code == 0]
        if GROUP in types:
            listed = await broker.request(ListGroupsRequest(), min(4, broker.table[ApiKey.LIST_GROUPS].hi or 4))
            names += [(g.group_id, GROUP) for g in listed.groups]
    except (UpstreamError, ProtocolError) as exc:
        return Close(f"cannot list the tenant's config resources: {exc}", ex.api_key)
    ns = tenant.namespace
    mine = sorted((own, kind) for name, kind in names if (own := ns.from_cluster(name)) is not None)
    return Answer(ListConfigResourcesResponse(
        config_resources=[ConfigResource(resource_name=name, resource_type=kind) for name, kind in mine]))
