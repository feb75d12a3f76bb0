"""Every response is checked for ownership by topic id as well as by name (fake context, no broker)."""

from __future__ import annotations

import uuid

import pytest

from tenantry.protocol.messages.fetch_request import FetchRequest, FetchTopic
from tenantry.protocol.messages.fetch_response import FetchableTopicResponse, FetchResponse
from tenantry.proxy.rewrite.rewriter import Leak
from tenantry.proxy.stages import admission, rewriting
from tests.unit.pipeline.fakes import FakeContext, exchange, registry
from tests.unit.pipeline.test_login_stage import log_in
from tests.unit.pipeline.test_stages import respond

OURS, THEIRS, NEW = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)


async def fetched(ctx: FakeContext, response_id: uuid.UUID):
    ctx.topic_ids.learn(OURS, "acme.orders")
    ctx.topic_ids.learn(THEIRS, "globex.orders")
    ex = exchange(FetchRequest(max_wait_ms=1, topics=[FetchTopic(topic_id=OURS)]), 13)
    admission.offered(ex, ctx)
    assert rewriting.rewrite(ex, ctx) is None
    respond(ex, ctx, FetchResponse(responses=[FetchableTopicResponse(topic_id=response_id)]))
    return ex


async def test_a_response_naming_the_tenants_own_topic_id_passes():
    ctx = FakeContext(registry())
    await log_in(ctx)
    ex = await fetched(ctx, OURS)
    assert ex.before_release is None


async def test_a_response_naming_another_tenants_topic_id_is_a_leak():
    ctx = FakeContext(registry())
    await log_in(ctx)
    with pytest.raises(Leak):
        await fetched(ctx, THEIRS)


async def test_an_unknown_id_in_a_response_is_looked_up_before_the_response_leaves():
    ctx = FakeContext(registry())
    await log_in(ctx)
    ex = await fetched(ctx, NEW)
    assert ex.before_release is not None
    ctx.topic_ids.learn(NEW, "globex.payments")  # what the broker says the id is
    with pytest.raises(Leak):
        await ex.before_release
    assert ctx.looked_up == [{NEW}]


async def test_an_unknown_id_that_turns_out_to_be_the_tenants_passes():
    ctx = FakeContext(registry())
    await log_in(ctx)
    ex = await fetched(ctx, NEW)
    ctx.topic_ids.learn(NEW, "acme.payments")
    assert ex.before_release is not None
    await ex.before_release
