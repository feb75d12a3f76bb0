"""The authorization stage and the ACL APIs, with a fake context: per-API verdicts, the shapes of refusals,
the response filters, the hot paths left alone, and every offered API covered by a rule."""

from __future__ import annotations

import uuid

import pytest

from benchmarks.rawkafka import record_batch
from tenantry.protocol import decode
from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.headers import parse_request_header
from tenantry.protocol.messages import REQUESTS, RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from tenantry.protocol.messages.create_topics_request import CreatableTopic, CreateTopicsRequest
from tenantry.protocol.messages.delete_acls_request import DeleteAclsFilter, DeleteAclsRequest
from tenantry.protocol.messages.describe_acls_request import DescribeAclsRequest
from tenantry.protocol.messages.describe_configs_request import DescribeConfigsRequest, DescribeConfigsResource
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from tenantry.protocol.messages.init_producer_id_request import InitProducerIdRequest
from tenantry.protocol.messages.join_group_request import JoinGroupRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from tenantry.protocol.messages.metadata_response import MetadataResponse, MetadataResponseTopic
from tenantry.protocol.messages.offset_fetch_request import OffsetFetchRequest, OffsetFetchRequestTopic
from tenantry.protocol.messages.offset_fetch_response import (
    OffsetFetchResponse,
    OffsetFetchResponsePartition,
    OffsetFetchResponseTopic,
)
from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tenantry.protocol.messages.produce_response import PartitionProduceResponse, ProduceResponse, TopicProduceResponse
from tenantry.proxy.authorization.rules import RULES, UNCHECKED
from tenantry.proxy.outcomes import Answer, AnswerBytes, Suspend
from tenantry.proxy.rewrite.policy import TENANT_API_MAX
from tenantry.proxy.stages import acl_admin, authorization, rewriting
from tenantry.tenants.acls import Acls
from tests.unit.pipeline.fakes import FakeContext, outcome_of, registry
from tests.unit.pipeline.fakes import exchange as unparsed
from tests.unit.pipeline.test_login_stage import log_in
from tests.unit.pipeline.test_stages import body_of, respond

DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED


def exchange(message, version):
    """An exchange past admission (its header parsed), where the authorization stage meets it."""
    ex = unparsed(message, version)
    ex.header = parse_request_header(ex.frame)
    return ex


def acl(rt: str, name: str, op: str, permission: str = "ALLOW", pattern: str = "LITERAL",
        principal: str = "User:alice") -> dict[str, str]:
    return {"resource_type": rt, "name": name, "pattern": pattern, "principal": principal, "host": "*",
            "operation": op, "permission": permission}


async def checked(*acls: dict[str, str], authorization: str = "acls", admins: tuple[str, ...] = ("ops",)):
    """A context logged in as alice of acme, whose requests are checked against `acls`."""
    ctx = FakeContext(registry(authorization=authorization, admin_users=list(admins), acls=list(acls)))
    await log_in(ctx)
    return ctx


def produce(*topics: str, acks: int = -1, transactional_id: str | None = None) -> ProduceRequest:
    return ProduceRequest(acks=acks, timeout_ms=1000, transactional_id=transactional_id, topic_data=[
        TopicProduceData(name=t, partition_data=[PartitionProduceData(index=p, records=record_batch(1, 10))
                                                 for p in (0, 1)]) for t in topics])


def test_every_api_offered_to_tenants_has_a_rule():
    answered_by_acl_stage = set(acl_admin.ACL_APIS)
    missing = set(TENANT_API_MAX) - set(RULES) - UNCHECKED - answered_by_acl_stage
    assert missing == set(), [ApiKey(k).name for k in missing]


async def test_open_tenants_and_admin_users_pass_untouched():
    for ctx in (await checked(authorization="open"), await checked(admins=("alice",))):
        ex = exchange(produce("secret"), 9)
        frame = ex.frame
        assert authorization.authorize(ex, ctx) is None and ex.frame is frame


async def test_an_allowed_produce_is_decided_on_its_scanned_names_and_not_copied():
    ctx = await checked(acl("TOPIC", "ord", "WRITE", pattern="PREFIXED"))
    ex = exchange(produce("orders", "ord-2"), 9)
    frame = ex.frame
    assert authorization.authorize(ex, ctx) is None and ex.frame is frame


async def test_a_refused_topic_is_taken_out_and_answered_with_topic_authorization_failed(caplog):
    caplog.set_level("INFO")
    ctx = await checked(acl("TOPIC", "orders", "WRITE"))
    ex = exchange(produce("orders", "secret"), 9)
    assert authorization.authorize(ex, ctx) is None
    assert [t.name for t in decode(ProduceRequest, ex.body, 9).topic_data] == ["orders"]
    assert rewriting.rewrite(ex, ctx) is None
    respond(ex, ctx, ProduceResponse(responses=[TopicProduceResponse(name="acme.orders", partition_responses=[
        PartitionProduceResponse(index=p, base_offset=10) for p in (0, 1)])]))
    answer = decode(ProduceResponse, body_of(ex), 9)
    assert {(t.name, p.index, p.error_code) for t in answer.responses for p in t.partition_responses} == {
        ("orders", 0, 0), ("orders", 1, 0), ("secret", 0, DENIED), ("secret", 1, DENIED)}
    assert ctx.meter.tenant.authorization_failures == {("0", "TOPIC"): 1}  # the tenant's, once logged in
    assert "denied 0 to user alice from 127.0.0.1: WRITE on TOPIC 'secret'" in caplog.text
    caplog.clear()  # the same denial again, soon: counted, not logged again
    assert authorization.authorize(exchange(produce("orders", "secret"), 9), ctx) is None
    assert ctx.meter.tenant.authorization_failures == {("0", "TOPIC"): 2} and "denied" not in caplog.text


async def test_a_produce_with_every_topic_refused_is_answered_by_the_proxy_and_acks_0_gets_nothing():
    ctx = await checked()
    answer = authorization.authorize(exchange(produce("secret"), 9), ctx)
    assert isinstance(answer, Answer)
    assert [p.error_code for t in answer.response.responses for p in t.partition_responses] == [DENIED, DENIED]
    assert answer.response.responses[0].partition_responses[0].base_offset == -1
    assert authorization.authorize(exchange(produce("secret", acks=0), 9), ctx) == AnswerBytes([])


async def test_a_transactional_produce_needs_write_on_its_transactional_id():
    ctx = await checked(acl("TOPIC", "orders", "WRITE"))
    answer = authorization.authorize(exchange(produce("orders", transactional_id="tx"), 9), ctx)
    assert isinstance(answer, Answer)
    assert {p.error_code for t in answer.response.responses for p in t.partition_responses} == {
        ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}
    ctx = await checked(acl("TOPIC", "orders", "WRITE"), acl("TRANSACTIONAL_ID", "tx", "WRITE"))
    assert authorization.authorize(exchange(produce("orders", transactional_id="tx"), 9), ctx) is None


@pytest.mark.parametrize("version", [7, 11, 12, 13, 15, REQUESTS[ApiKey.FETCH].VALID_VERSIONS.hi])
async def test_fetch_sessions_are_turned_off_for_checked_users(version):
    ctx = await checked(acl("TOPIC", "orders", "READ"))
    topic_id = uuid.uuid4()
    ctx.topic_ids.learn(topic_id, "acme.orders")
    request = FetchRequest(max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, isolation_level=1, session_id=42,
                           session_epoch=3, topics=[FetchTopic(topic="orders", topic_id=topic_id, partitions=[
                               FetchPartition(partition=0, fetch_offset=5)])])
    ex = exchange(request, version)
    assert authorization.authorize(ex, ctx) is None
    sent = decode(FetchRequest, ex.body, version)
    assert (sent.session_id, sent.session_epoch) == (0, -1)
    assert (sent.max_wait_ms, sent.min_bytes, sent.max_bytes, sent.isolation_level) == (500, 1, 1 << 20, 1)


async def test_a_topic_id_never_seen_is_looked_up_before_the_rule_runs():
    ctx = await checked()
    topic_id = uuid.uuid4()
    request = FetchRequest(max_wait_ms=500, session_epoch=-1, topics=[FetchTopic(topic_id=topic_id, partitions=[
        FetchPartition(partition=0)])])
    outcome = authorization.authorize(exchange(request, 13), ctx)
    assert isinstance(outcome, Suspend)
    assert await outcome_of(outcome) is None and ctx.looked_up == [{topic_id}]  # not the tenant's: the rewrite's
    ctx.topic_ids.learn(topic_id, "acme.secret")
    answer = authorization.authorize(exchange(request, 13), ctx)
    assert isinstance(answer, Answer)
    assert [(t.topic_id, t.partitions[0].error_code) for t in answer.response.responses] == [(topic_id, DENIED)]
    assert answer.response.responses[0].partitions[0].records == b""  # a null record set breaks librdkafka


async def test_metadata_lists_only_what_the_user_may_describe():
    ctx = await checked(acl("TOPIC", "orders", "READ"))
    ex = exchange(MetadataRequest(topics=None), 12)
    assert authorization.authorize(ex, ctx) is None and rewriting.rewrite(ex, ctx) is None
    respond(ex, ctx, MetadataResponse(topics=[MetadataResponseTopic(name=f"acme.{n}", topic_id=uuid.uuid4())
                                              for n in ("orders", "secret")]))
    assert [t.name for t in decode(MetadataResponse, body_of(ex), 12).topics] == ["orders"]


async def test_metadata_answers_a_named_topic_the_user_may_not_describe_without_asking_the_broker():
    ctx = await checked(acl("TOPIC", "orders", "READ"))
    ex = exchange(MetadataRequest(topics=[MetadataRequestTopic(name=n) for n in ("orders", "secret")],
                                  allow_auto_topic_creation=True, include_topic_authorized_operations=True), 12)
    assert authorization.authorize(ex, ctx) is None
    sent = decode(MetadataRequest, ex.body, 12)
    assert [t.name for t in sent.topics] == ["orders"] and sent.allow_auto_topic_creation is False
    assert rewriting.rewrite(ex, ctx) is None
    respond(ex, ctx, MetadataResponse(topics=[MetadataResponseTopic(name="acme.orders", topic_id=uuid.uuid4())]))
    topics = {t.name: t for t in decode(MetadataResponse, body_of(ex), 12).topics}
    assert topics["secret"].error_code == DENIED and topics["orders"].error_code == 0
    assert topics["orders"].topic_authorized_operations == (1 << 3) | (1 << 8)  # READ, DESCRIBE


async def test_a_group_the_user_may_not_read_refuses_join_group():
    ctx = await checked(acl("GROUP", "other", "READ"))
    answer = authorization.authorize(exchange(JoinGroupRequest(group_id="g", member_id="m", protocol_type="consumer"),
                                              7), ctx)
    assert isinstance(answer, Answer)
    assert (answer.response.error_code, answer.response.generation_id, answer.response.protocol_name) == (
        ErrorCode.GROUP_AUTHORIZATION_FAILED, -1, None)


async def test_an_idempotent_producer_needs_write_on_some_topic_or_idempotent_write():
    request = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=1000)
    assert authorization.authorize(exchange(request, 4), await checked(acl("TOPIC", "x", "WRITE",
                                                                           pattern="PREFIXED"))) is None
    assert authorization.authorize(exchange(request, 4), await checked(acl("CLUSTER", "kafka-cluster",
                                                                           "IDEMPOTENT_WRITE"))) is None
    answer = authorization.authorize(exchange(request, 4), await checked(acl("TOPIC", "x", "READ")))
    assert isinstance(answer, Answer) and answer.response.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    assert answer.response.producer_id == -1


async def test_create_topics_needs_create_on_the_cluster_or_on_the_topic():
    request = CreateTopicsRequest(topics=[CreatableTopic(name=n, num_partitions=1, replication_factor=1)
                                          for n in ("team-a", "other")])
    assert authorization.authorize(exchange(request, 7), await checked(acl("CLUSTER", "kafka-cluster",
                                                                           "CREATE"))) is None
    ex = exchange(request, 7)
    assert authorization.authorize(ex, await checked(acl("TOPIC", "team-", "CREATE", pattern="PREFIXED"))) is None
    assert [t.name for t in decode(CreateTopicsRequest, ex.body, 7).topics] == ["team-a"]


async def test_offsets_of_topics_the_user_may_not_describe_are_hidden():
    ctx = await checked(acl("GROUP", "g", "READ"), acl("TOPIC", "orders", "READ"))
    ex = exchange(OffsetFetchRequest(group_id="g", topics=None), 7)
    assert authorization.authorize(ex, ctx) is None and rewriting.rewrite(ex, ctx) is None
    respond(ex, ctx, OffsetFetchResponse(topics=[OffsetFetchResponseTopic(name=f"acme.{n}", partitions=[
        OffsetFetchResponsePartition(partition_index=0, committed_offset=99)]) for n in ("orders", "secret")]))
    assert [t.name for t in decode(OffsetFetchResponse, body_of(ex), 7).topics] == ["orders"]
    ex = exchange(OffsetFetchRequest(group_id="g", topics=[OffsetFetchRequestTopic(name="secret",
                                                                                   partition_indexes=[0])]), 7)
    assert authorization.authorize(ex, ctx) is None and rewriting.rewrite(ex, ctx) is None
    respond(ex, ctx, OffsetFetchResponse(topics=[OffsetFetchResponseTopic(name="acme.secret", partitions=[
        OffsetFetchResponsePartition(partition_index=0, committed_offset=99)])]))
    partition = decode(OffsetFetchResponse, body_of(ex), 7).topics[0].partitions[0]
    assert (partition.error_code, partition.committed_offset) == (DENIED, -1)


async def test_config_resources_are_checked_on_their_own_resource():
    ctx = await checked(acl("TOPIC", "orders", "DESCRIBE_CONFIGS"))
    request = DescribeConfigsRequest(resources=[DescribeConfigsResource(resource_type=t, resource_name=n)
                                                for t, n in ((2, "orders"), (2, "secret"), (4, "1"))])
    ex = exchange(request, 4)
    assert authorization.authorize(ex, ctx) is None
    assert [r.resource_name for r in decode(DescribeConfigsRequest, ex.body, 4).resources] == ["orders"]


async def test_a_changed_acl_applies_to_the_next_request():
    ctx = await checked()
    tenant = ctx.tenant()
    assert isinstance(authorization.authorize(exchange(produce("orders"), 9), ctx), Answer)
    tenant.acls = Acls.from_config([acl("TOPIC", "orders", "WRITE")])
    assert authorization.authorize(exchange(produce("orders"), 9), ctx) is None


# -- the ACL APIs -------------------------------------------------------------------------------------
def creation(name: str, operation: int = 3, principal: str = "User:bob") -> AclCreation:
    return AclCreation(resource_type=2, resource_name=name, resource_pattern_type=3, principal=principal,
                       host="*", operation=operation, permission_type=3)


async def test_admin_users_create_describe_and_delete_the_tenants_acls():
    ctx = await checked(admins=("alice",))
    answer = await outcome_of(acl_admin.answer(exchange(CreateAclsRequest(creations=[
        creation("orders"), creation("orders", operation=9), creation("logs", principal="Group:x")]), 3), ctx))
    assert [r.error_code for r in answer.response.results] == [0, ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST]
    assert "does not apply" in answer.response.results[1].error_message
    described = acl_admin.answer(exchange(DescribeAclsRequest(
        resource_type_filter=1, resource_name_filter=None, pattern_type_filter=1, principal_filter=None,
        host_filter=None, operation=1, permission_type=1), 3), ctx)
    assert [(r.resource_name, [a.principal for a in r.acls]) for r in described.response.resources] == [
        ("orders", ["User:bob"])]
    deleted = await outcome_of(acl_admin.answer(exchange(DeleteAclsRequest(filters=[DeleteAclsFilter(
        resource_type_filter=2, resource_name_filter="orders", pattern_type_filter=3, principal_filter=None,
        host_filter=None, operation=1, permission_type=1)]), 3), ctx))
    assert [m.resource_name for m in deleted.response.filter_results[0].matching_acls] == ["orders"]
    assert ctx.tenant().acls.bindings == ()


async def test_other_users_manage_acls_only_with_the_rights_a_broker_asks_for():
    describe = DescribeAclsRequest(resource_type_filter=1, pattern_type_filter=1, operation=1, permission_type=1)
    answer = acl_admin.answer(exchange(describe, 3), await checked(authorization="open"))
    assert answer.response.error_code == ErrorCode.SECURITY_DISABLED
    answer = acl_admin.answer(exchange(describe, 3), await checked())
    assert answer.response.error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED
    ctx = await checked(acl("CLUSTER", "kafka-cluster", "DESCRIBE"))
    assert acl_admin.answer(exchange(describe, 3), ctx).response.error_code == 0
    create = await outcome_of(acl_admin.answer(exchange(CreateAclsRequest(creations=[creation("x")]), 3), ctx))
    assert create.response.results[0].error_code == ErrorCode.CLUSTER_AUTHORIZATION_FAILED


def test_refusal_shapes_decode_in_every_version_the_response_has():
    from tenantry.protocol import encode
    from tenantry.proxy.authorization.shapes import error_response

    for key in RULES:
        cls = RESPONSES[key]
        response = error_response(key, ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        for version in range(cls.VALID_VERSIONS.lo, (cls.VALID_VERSIONS.hi or 0) + 1):
            decode(cls, memoryview(encode(response, version)), version)


async def test_metadata_before_v4_creates_topics_only_for_users_who_may_create_them():
    """Metadata v1-v3 has no AllowAutoTopicCreation flag: in a tenant that allows auto-creation, a checked
    user without CREATE gets the existing-topics-only treatment of tenants that do not."""
    from tenantry.proxy.stages import topic_creation

    request = MetadataRequest(topics=[MetadataRequestTopic(name="new-topic")])
    may_not = FakeContext(registry(authorization="acls", allow_auto_create_topics=True,
                                   acls=[acl("TOPIC", "new-", "DESCRIBE", pattern="PREFIXED")]))
    await log_in(may_not)
    waiting = topic_creation.metadata(exchange(request, 3), may_not)
    assert isinstance(waiting, Suspend)
    waiting.until.close()  # (the broker check it would wait for is not the point here)
    may = FakeContext(registry(authorization="acls", allow_auto_create_topics=True,
                               acls=[acl("TOPIC", "new-", "CREATE", pattern="PREFIXED")]))
    await log_in(may)
    assert topic_creation.metadata(exchange(request, 3), may) is None


def test_a_tenant_cannot_grow_its_acls_without_end(monkeypatch):
    from tenantry.proxy.authorization import acl_apis

    monkeypatch.setattr(acl_apis, "MAX_BINDINGS", 2)
    acls, answer = acl_apis.create(Acls(), CreateAclsRequest(creations=[creation("a"), creation("a"), creation("b"),
                                                                        creation("c")]))
    assert [r.error_code for r in answer.results] == [0, 0, 0, ErrorCode.POLICY_VIOLATION]
    assert [b.name for b in acls.bindings] == ["a", "b"]
    acls, answer = acl_apis.create(acls, CreateAclsRequest(creations=[creation("a")]))  # already held: no growth
    assert answer.results[0].error_code == 0 and len(acls.bindings) == 2
