"""The proxy's guard-rail decisions on decoded requests, with a fake clock (the broker's use is given)."""

import asyncio

from tenantry.protocol import decode, encode
from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from tenantry.protocol.messages.create_topics_response import CreateTopicsResponse
from tenantry.proxy.flow import ReadGate
from tenantry.proxy.guard import Guard, merge_refused
from tenantry.proxy.throttler import Throttler
from tenantry.tenants.limits import Limits, Usage
from tenantry.tenants.quotas import Meters, QuotaSpec
from tenantry.tenants.registry import Tenant


def create(*names: str, partitions: int = 1) -> CreateTopicsRequest:
    return CreateTopicsRequest(topics=[CreatableTopic(name=n, num_partitions=partitions, replication_factor=1)
                                       for n in names], timeout_ms=1000)


def review(guard: Guard, tenant: Tenant, request, version: int = 7, usage: Usage | None = None):
    return guard._review_topics(tenant.limits, guard._state(tenant), usage or Usage(), None, 19, version, request)


def test_mutations_are_admitted_while_the_bucket_holds_tokens_then_refused_per_topic():
    now = [0.0]
    guard = Guard(lambda: now[0])
    tenant = Tenant("t", "t.", limits=Limits(topic_mutations_per_sec=0.2))  # burst: 2 partitions
    assert review(guard, tenant, create("a", partitions=3)).answer is None  # admitted, 1 in debt
    refused = review(guard, tenant, create("b", "c")).answer
    assert [t.error_code for t in refused.topics] == [ErrorCode.THROTTLING_QUOTA_EXCEEDED] * 2
    assert refused.throttle_time_ms == 5000
    now[0] += 5.1
    assert review(guard, tenant, create("b")).answer is None


def test_old_versions_are_delayed_instead_of_refused():
    guard = Guard(lambda: 0.0)
    tenant = Tenant("t", "t.", limits=Limits(topic_mutations_per_sec=1))
    review(guard, tenant, create("a", partitions=11), version=5)
    verdict = review(guard, tenant, create("b"), version=5)
    assert verdict.answer is None and verdict.throttle > 0


def test_refused_topics_are_merged_into_the_brokers_answer():
    guard = Guard(lambda: 0.0)
    tenant = Tenant("t", "t.", limits=Limits(max_topics=1))
    verdict = review(guard, tenant, create("a", "b"))
    assert [t.name for t in verdict.request.topics] == ["a"]
    broker = encode(CreateTopicsResponse(topics=[CreateTopicsResponse.FIELDS[1].struct(name="a")]), 7)
    header = b"\x00"  # the flexible response header's empty tagged fields
    merged = merge_refused(19, 7, [header + broker], 1, verdict.refused)
    answer = decode(CreateTopicsResponse, memoryview(b"".join(merged))[1:], 7)
    assert [(t.name, t.error_code) for t in answer.topics] == [("a", 0), ("b", ErrorCode.POLICY_VIOLATION)]


def test_a_mute_pauses_reading_and_ends_by_itself():
    class Transport:
        paused = False

        def pause_reading(self):
            self.paused = True

        def resume_reading(self):
            self.paused = False

        def is_closing(self):
            return False

    async def run():
        gate, transport = ReadGate(), Transport()
        gate.attach(transport)
        throttler = Throttler(Meters(QuotaSpec(), {}, lambda: 0.0), "u", gate, max_delay=1.0)
        throttler.mute(0.05)
        assert transport.paused
        await asyncio.sleep(0.2)
        assert not transport.paused
    asyncio.run(run())
