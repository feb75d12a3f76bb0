"""Each pipeline stage on its own, with a fake context and a fake clock (no broker, no socket)."""

from __future__ import annotations

import uuid

import pytest

from benchmarks.rawkafka import record_batch
from tenantry.protocol import ErrorCode, decode, encode
from tenantry.protocol.headers import encode_response_header
from tenantry.protocol.messages.api_versions_request import ApiVersionsRequest
from tenantry.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from tenantry.protocol.messages.create_topics_response import CreatableTopicResult, CreateTopicsResponse
from tenantry.protocol.messages.describe_cluster_request import DescribeClusterRequest
from tenantry.protocol.messages.fetch_request import FetchRequest, FetchTopic
from tenantry.protocol.messages.fetch_response import FetchResponse
from tenantry.protocol.messages.join_group_request import JoinGroupRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from tenantry.protocol.messages.metadata_response import MetadataResponse, MetadataResponseTopic
from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tenantry.protocol.messages.produce_response import PartitionProduceResponse, ProduceResponse, TopicProduceResponse
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, AnswerBytes, Close, Forward, Suspend
from tenantry.proxy.stages import admission, broker, forward, guard_rails, local_answers, metering, quotas, rewriting
from tests.unit.pipeline.fakes import FakeContext, exchange, outcome_of, registry
from tests.unit.pipeline.test_login_stage import log_in


def produce(acks: int = -1, topic: str = "orders", records: int = 3) -> ProduceRequest:
    batch = record_batch(records, 10)
    return ProduceRequest(acks=acks, timeout_ms=1000, topic_data=[TopicProduceData(
        name=topic, partition_data=[PartitionProduceData(index=0, records=batch)])])


def respond(ex: Exchange, ctx: FakeContext, response, flexible_header: bool = True) -> None:
    """Give the exchange a broker response and run its hooks, as the connection does."""
    frame = memoryview(encode_response_header(ex.client_corr, 1 if flexible_header else 0)
                       + encode(response, ex.api_version))
    ex.response, ex.body_offset = frame, 5 if flexible_header else 4
    for hook in reversed(ex.hooks):
        hook(ex, ctx)


def body_of(ex: Exchange) -> memoryview:
    assert ex.chunks is not None
    return memoryview(b"".join(ex.chunks))[ex.body_offset - 4:]


# -- metering ---------------------------------------------------------------------------------------
def test_every_request_is_counted_before_anything_else_happens():
    ctx = FakeContext(registry())
    ex = exchange(MetadataRequest(topics=[]), 12)
    assert metering.count_request(ex, ctx) is None
    assert ctx.stats.tenant("").requests[3] == 1 and ctx.stats.tenant("").bytes_in == len(ex.frame) + 4


async def test_records_are_counted_from_the_batch_headers_and_errors_from_the_response():
    ctx = FakeContext(registry())
    await log_in(ctx)
    ctx.meter.logged_in("acme", lambda _: None)
    ex = exchange(produce(records=5), 9)
    assert admission.offered(ex, ctx) is None and metering.count_payload(ex, ctx) is None
    assert ctx.stats.tenant("acme").records_in == 5 and ctx.client_ids == ["app"]
    not_leader = 6
    error = TopicProduceResponse(name="acme.orders", partition_responses=[
        PartitionProduceResponse(index=0, error_code=not_leader)])
    rewriting.rewrite(ex, ctx)
    respond(ex, ctx, ProduceResponse(responses=[error]))
    assert ctx.stats.tenant("acme").errors[(0, not_leader)] == 1


# -- local answers and admission ----------------------------------------------------------------------
def test_api_versions_is_answered_with_the_tenant_table():
    ctx = FakeContext(registry())
    answer = local_answers.api_versions(exchange(ApiVersionsRequest(), 3), ctx)
    assert isinstance(answer, Answer) and answer.version is None
    offered = {k.api_key for k in answer.response.api_keys}
    assert 0 in offered and 17 in offered and 32 in offered and 29 in offered  # DescribeAcls: the tenant's own
    assert 51 not in offered and 57 not in offered  # AlterUserScramCredentials, UpdateFeatures: never


def test_a_client_newer_than_the_proxy_gets_a_v0_answer_with_unsupported_version():
    ctx = FakeContext(registry())
    ex = Exchange(memoryview(b"\x00\x12\x00\x63\x00\x00\x00\x01\xff\xff"), 18, 99, 1)
    answer = local_answers.api_versions(ex, ctx)
    assert isinstance(answer, Answer) and answer.version == 0
    assert answer.response.error_code == ErrorCode.UNSUPPORTED_VERSION


def test_describe_cluster_for_controllers_is_refused_and_for_brokers_passes():
    ctx = FakeContext()
    controllers = exchange(DescribeClusterRequest(endpoint_type=2), 1)
    assert admission.offered(controllers, ctx) is None
    answer = local_answers.controllers(controllers, ctx)
    assert isinstance(answer, Answer) and answer.response.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    brokers = exchange(DescribeClusterRequest(endpoint_type=1), 1)
    admission.offered(brokers, ctx)
    assert local_answers.controllers(brokers, ctx) is None


def test_without_tenants_sasl_is_refused_as_a_plaintext_listener_does():
    answer = local_answers.sasl_refusal(exchange(SaslHandshakeRequest(mechanism="PLAIN"), 1), FakeContext())
    assert isinstance(answer, Answer) and answer.response.error_code == ErrorCode.ILLEGAL_SASL_STATE


def test_an_api_not_offered_to_tenants_closes_the_connection():
    ctx = FakeContext(registry())
    from tenantry.protocol.messages.alter_user_scram_credentials_request import AlterUserScramCredentialsRequest

    outcome = admission.offered(exchange(AlterUserScramCredentialsRequest(), 0), ctx)
    assert isinstance(outcome, Close) and "not offered" in outcome.reason


# -- the broker connection and forwarding -------------------------------------------------------------
async def test_a_request_waits_while_the_broker_connection_is_not_ready():
    ctx = FakeContext()
    ctx.broker_state = "re-authenticating"
    outcome = broker.ready(exchange(MetadataRequest(topics=[]), 12), ctx)
    assert isinstance(outcome, Suspend) and await outcome_of(outcome) is None
    assert broker.ready(exchange(MetadataRequest(topics=[]), 12), ctx) is None
    assert ctx.broker_waits == ["re-authenticating"]


def test_produce_with_acks_0_is_forwarded_without_a_response():
    ctx = FakeContext()
    for acks, expected in ((0, Forward(False)), (1, Forward(True)), (-1, Forward(True))):
        ex = exchange(produce(acks), 9)
        admission.offered(ex, ctx)
        assert forward.forward(ex, ctx) == expected


# -- quotas -------------------------------------------------------------------------------------------
async def test_a_request_over_its_quota_is_throttled_and_its_response_says_so():
    ctx = FakeContext(registry(quotas={"requests_per_sec": 1}))
    await log_in(ctx)
    first, second = exchange(MetadataRequest(topics=[]), 12), exchange(MetadataRequest(topics=[]), 12)
    for ex in (first, second):
        admission.offered(ex, ctx)
        assert quotas.charge(ex, ctx) is None
    assert first.throttle_until <= ctx.clock() < second.throttle_until
    assert ctx.throttler is not None and "throttled" in ctx.throttler.gate.blocked  # type: ignore[attr-defined]
    rewriting.rewrite(second, ctx)
    respond(second, ctx, MetadataResponse(throttle_time_ms=0))
    throttle = decode(MetadataResponse, body_of(second), 12).throttle_time_ms
    assert throttle == round((second.throttle_until - ctx.clock()) * 1000) > 0


async def test_a_fetch_while_in_fetch_debt_is_answered_empty_at_once():
    ctx = FakeContext(registry(quotas={"fetch_bytes_per_sec": 1000}))
    await log_in(ctx)
    assert ctx.throttler is not None
    ctx.throttler.on_fetch_response(5000)  # 4 s of debt beyond the 1 s burst
    ex = exchange(FetchRequest(max_wait_ms=500, topics=[FetchTopic(topic="orders")]), 12)
    admission.offered(ex, ctx)
    answer = quotas.charge(ex, ctx)
    assert isinstance(answer, AnswerBytes)
    empty = decode(FetchResponse, memoryview(answer.chunks[0])[9:], 12)  # size, correlation id, tagged fields
    assert empty.responses == [] and empty.throttle_time_ms > 0


async def test_release_sends_at_once_to_clients_that_throttle_themselves_and_holds_older_responses():
    ctx = FakeContext(registry())
    await log_in(ctx)
    new, old = exchange(produce(), 9), exchange(produce(), 5)
    for ex in (new, old):
        ex.throttle_until = ctx.clock() + 2.0
    assert quotas.release(new, ctx) == 0.0  # v9: the client backs off itself; reading is muted instead
    assert quotas.release(old, ctx) == 2.0  # v5 (before KIP-219): the response itself waits


async def test_a_produce_response_throttle_is_raised_never_lowered():
    ctx = FakeContext(registry(quotas={"produce_bytes_per_sec": 100}))
    await log_in(ctx)
    ex = exchange(produce(records=50), 9)
    admission.offered(ex, ctx)
    quotas.charge(ex, ctx)
    rewriting.rewrite(ex, ctx)
    respond(ex, ctx, ProduceResponse(throttle_time_ms=1))
    assert decode(ProduceResponse, body_of(ex), 9).throttle_time_ms > 1


# -- guard rails --------------------------------------------------------------------------------------
async def test_a_topic_over_the_limit_is_taken_out_and_its_refusal_merged_into_the_brokers_answer():
    ctx = FakeContext(registry(limits={"max_topics": 1}))
    await log_in(ctx)
    ctx.broker_link.answers[3] = MetadataResponse(topics=[])
    ex = exchange(CreateTopicsRequest(topics=[CreatableTopic(name=n, num_partitions=1, replication_factor=-1)
                                              for n in ("a", "b")], timeout_ms=1000), 7)
    admission.offered(ex, ctx)
    suspended = guard_rails.check(ex, ctx)
    assert isinstance(suspended, Suspend) and await outcome_of(suspended) is None
    assert [t.name for t in decode(CreateTopicsRequest, ex.body, 7).topics] == ["a"]
    rewriting.rewrite(ex, ctx)
    respond(ex, ctx, CreateTopicsResponse(topics=[CreatableTopicResult(name="acme.a")]))
    merged = decode(CreateTopicsResponse, body_of(ex), 7)
    assert [(t.name, t.error_code) for t in merged.topics] == [("a", 0), ("b", ErrorCode.POLICY_VIOLATION)]


async def test_a_group_over_the_limit_is_answered_by_the_guard():
    from tenantry.protocol.messages.list_groups_response import ListedGroup, ListGroupsResponse

    ctx = FakeContext(registry(limits={"max_groups": 1}))
    await log_in(ctx)
    ctx.broker_link.answers[16] = ListGroupsResponse(groups=[ListedGroup(group_id="acme.existing")])
    ex = exchange(JoinGroupRequest(group_id="new", protocol_type="consumer"), 9)
    admission.offered(ex, ctx)
    answer = await outcome_of(guard_rails.check(ex, ctx))
    assert isinstance(answer, Answer) and answer.response.error_code == ErrorCode.POLICY_VIOLATION


async def test_requests_a_guard_does_not_watch_pass_without_asking_the_broker():
    ctx = FakeContext(registry(limits={"max_topics": 1}))
    await log_in(ctx)
    ex = exchange(produce(), 9)
    admission.offered(ex, ctx)
    assert guard_rails.check(ex, ctx) is None and ctx.broker_link.asked == []


# -- rewriting ----------------------------------------------------------------------------------------
async def test_unknown_topic_ids_are_looked_up_once_then_swapped_if_still_unknown():
    ctx = FakeContext(registry())
    await log_in(ctx)
    foreign = uuid.uuid4()
    ex = exchange(MetadataRequest(topics=[MetadataRequestTopic(topic_id=foreign, name=None)]), 12)
    admission.offered(ex, ctx)
    suspended = rewriting.rewrite(ex, ctx)
    assert isinstance(suspended, Suspend) and await outcome_of(suspended) is None
    assert ctx.looked_up == [{foreign}]
    sent = decode(MetadataRequest, memoryview(b"".join(bytes(p) for p in ex.parts))[ex.header.body_offset + 5:], 12)
    assert sent.topics[0].topic_id != foreign  # a fresh id: the broker answers UNKNOWN_TOPIC_ID for it
    respond(ex, ctx, MetadataResponse(topics=[MetadataResponseTopic(
        topic_id=sent.topics[0].topic_id, name=None, error_code=ErrorCode.UNKNOWN_TOPIC_ID)]))
    assert decode(MetadataResponse, body_of(ex), 12).topics[0].topic_id == foreign


async def test_a_response_naming_another_tenants_topic_raises_leak():
    from tenantry.proxy.rewrite.rewriter import Leak

    ctx = FakeContext(registry())
    await log_in(ctx)
    ex = exchange(produce(), 9)
    admission.offered(ex, ctx)
    rewriting.rewrite(ex, ctx)
    with pytest.raises(Leak):
        respond(ex, ctx, ProduceResponse(responses=[TopicProduceResponse(name="globex.orders")]))


async def test_a_kip848_regex_error_quotes_the_tenants_own_regex():
    from tenantry.protocol.messages.consumer_group_heartbeat_request import ConsumerGroupHeartbeatRequest
    from tenantry.protocol.messages.consumer_group_heartbeat_response import ConsumerGroupHeartbeatResponse

    ctx = FakeContext(registry())
    await log_in(ctx)
    ex = exchange(ConsumerGroupHeartbeatRequest(group_id="g", member_id="m", subscribed_topic_regex="^orders-eu"), 1)
    admission.offered(ex, ctx)
    rewriting.rewrite(ex, ctx)
    confined = ex.rewrite.regex[0]
    assert "acme" in confined
    respond(ex, ctx, ConsumerGroupHeartbeatResponse(
        error_code=ErrorCode.INVALID_REGULAR_EXPRESSION, error_message=f"Invalid regular expression {confined}: x"))
    message = decode(ConsumerGroupHeartbeatResponse, body_of(ex), 1).error_message
    assert message == "Invalid regular expression ^orders-eu: x"


async def test_classic_member_ids_are_built_from_the_tenants_own_client_id():
    ctx = FakeContext(registry())
    await log_in(ctx)
    ex = exchange(JoinGroupRequest(group_id="g", protocol_type="consumer"), 9, client_id="my-app")
    admission.offered(ex, ctx)
    rewriting.rewrite(ex, ctx)
    sent = memoryview(b"".join(bytes(p) for p in ex.parts))
    from tenantry.protocol.headers import parse_request_header

    assert parse_request_header(sent).client_id == "my-app"  # the broker's member id will be "my-app-<uuid>"
