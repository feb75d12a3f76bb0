"""What the proxy answers itself about a tenant: its quotas and its config resources."""

from __future__ import annotations

from benchmarks.inprocess import acme
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.describe_client_quotas_request import ComponentData, DescribeClientQuotasRequest
from tenantry.protocol.messages.list_config_resources_request import ListConfigResourcesRequest
from tenantry.protocol.messages.list_groups_response import ListedGroup, ListGroupsResponse
from tenantry.protocol.messages.metadata_response import MetadataResponse, MetadataResponseTopic
from tenantry.proxy.outcomes import Answer, Suspend
from tenantry.proxy.stages import admission, tenant_views
from tests.unit.pipeline.fakes import FakeContext, exchange
from tests.unit.pipeline.test_login_stage import log_in


def tenant_with_quotas():
    return acme(quotas={"produce_bytes_per_sec": 1_000_000, "max_connections": 20,
                        "users": {"alice": {"fetch_bytes_per_sec": 500_000}}})


def quotas_seen(ctx, *components, strict=False):
    ex = exchange(DescribeClientQuotasRequest(components=list(components), strict=strict), 1)
    assert admission.offered(ex, ctx) is None
    answer = tenant_views.client_quotas(ex, ctx)
    assert isinstance(answer, Answer)
    return {tuple((e.entity_type, e.entity_name) for e in entry.entity): {v.key: v.value for v in entry.values}
            for entry in answer.response.entries}


async def test_a_tenant_reads_its_own_quotas_as_the_proxy_enforces_them():
    ctx = FakeContext(tenant_with_quotas())
    await log_in(ctx)
    assert quotas_seen(ctx) == {
        (("tenant", "acme"),): {"producer_byte_rate": 1_000_000.0, "max_connections": 20.0},
        (("user", "alice"),): {"consumer_byte_rate": 500_000.0},
    }
    ctx.quotas.for_tenant(ctx.tenant()).retune({"produce": 250_000.0})  # the auto-tuner's share is what holds
    assert quotas_seen(ctx)[(("tenant", "acme"),)]["producer_byte_rate"] == 250_000.0


async def test_quota_filters_match_as_kafkas_do():
    ctx = FakeContext(tenant_with_quotas())
    await log_in(ctx)
    assert list(quotas_seen(ctx, ComponentData(entity_type="user", match_type=0, match="alice"))) == [
        (("user", "alice"),)]
    assert quotas_seen(ctx, ComponentData(entity_type="user", match_type=0, match="mallory")) == {}
    assert quotas_seen(ctx, ComponentData(entity_type="user", match_type=1, match=None)) == {}
    assert list(quotas_seen(ctx, ComponentData(entity_type="tenant", match_type=2), strict=True)) == [
        (("tenant", "acme"),)]


async def test_config_resources_are_the_tenants_topics_and_groups_stripped():
    ctx = FakeContext(acme())
    await log_in(ctx)
    ctx.broker_link.answers[ApiKey.METADATA] = MetadataResponse(topics=[
        MetadataResponseTopic(name="acme.orders"), MetadataResponseTopic(name="globex.payroll")])
    ctx.broker_link.answers[ApiKey.LIST_GROUPS] = ListGroupsResponse(groups=[
        ListedGroup(group_id="acme.billing"), ListedGroup(group_id="globex.hr")])
    ex = exchange(ListConfigResourcesRequest(resource_types=[]), 1)
    assert admission.offered(ex, ctx) is None
    suspended = tenant_views.config_resources(ex, ctx)
    assert isinstance(suspended, Suspend)
    answer = await suspended.until
    assert [(r.resource_name, r.resource_type) for r in answer.response.config_resources] == [
        ("billing", 32), ("orders", 2)]


async def test_broker_and_client_metrics_resources_list_nothing():
    ctx = FakeContext(acme())
    await log_in(ctx)
    for version, types in ((1, [4, 16]), (0, [])):
        ex = exchange(ListConfigResourcesRequest(resource_types=types), version)
        assert admission.offered(ex, ctx) is None
        answer = tenant_views.config_resources(ex, ctx)
        assert isinstance(answer, Answer) and answer.response.config_resources == []
    assert ctx.broker_link.asked == []


async def test_an_api_a_tenant_is_not_offered_closes_naming_the_tenant_and_the_api():
    from tenantry.protocol.messages.alter_user_scram_credentials_request import AlterUserScramCredentialsRequest

    ctx = FakeContext(acme())
    await log_in(ctx)
    closed = admission.offered(exchange(AlterUserScramCredentialsRequest(), 0), ctx)
    assert closed is not None and "to tenant acme" in closed.reason and "51" in closed.reason
