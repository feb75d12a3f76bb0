"""Metadata before v4 creates no topic for a tenant without auto-creation (fake context and broker)."""

from __future__ import annotations

from tenantry.protocol import ErrorCode, decode
from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from tenantry.protocol.messages.metadata_response import MetadataResponse, MetadataResponseTopic
from tenantry.proxy.stages import admission, rewriting, topic_creation
from tests.unit.pipeline.fakes import FakeContext, exchange, outcome_of, registry
from tests.unit.pipeline.test_login_stage import log_in
from tests.unit.pipeline.test_stages import body_of, respond


def metadata_v1(*names: str):
    return exchange(MetadataRequest(topics=[MetadataRequestTopic(name=n) for n in names]), 1)


async def test_unknown_topics_are_left_out_of_the_request_and_answered_unknown():
    ctx = FakeContext(registry())
    await log_in(ctx)
    ctx.broker_link.answers[3] = MetadataResponse(topics=[
        MetadataResponseTopic(name="acme.orders"),
        MetadataResponseTopic(name="acme.typo", error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)])
    ex = metadata_v1("orders", "typo")
    admission.offered(ex, ctx)
    assert await outcome_of(topic_creation.metadata(ex, ctx)) is None
    asked = ctx.broker_link.asked[0]
    assert asked.allow_auto_topic_creation is False and [t.name for t in asked.topics] == ["acme.orders", "acme.typo"]
    assert [t.name for t in decode(MetadataRequest, ex.body, 1).topics] == ["orders"]  # what goes to the broker
    rewriting.rewrite(ex, ctx)
    respond(ex, ctx, MetadataResponse(topics=[MetadataResponseTopic(name="acme.orders")]), flexible_header=False)
    answered = decode(MetadataResponse, body_of(ex), 1).topics
    assert [(t.name, t.error_code) for t in answered] == [("orders", 0), ("typo", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]


async def test_a_tenant_that_allows_auto_creation_and_v4_requests_are_not_touched():
    ctx = FakeContext(registry(allow_auto_create_topics=True))
    await log_in(ctx)
    ex = metadata_v1("new")
    admission.offered(ex, ctx)
    assert topic_creation.metadata(ex, ctx) is None
    ctx = FakeContext(registry())
    await log_in(ctx)
    v4 = exchange(MetadataRequest(topics=[MetadataRequestTopic(name="new")], allow_auto_topic_creation=True), 4)
    admission.offered(v4, ctx)
    assert topic_creation.metadata(v4, ctx) is None and ctx.broker_link.asked == []


def test_metadata_v0_is_not_offered_to_tenants():
    ctx = FakeContext(registry())
    assert ctx.version_table()[3].lo == 1
