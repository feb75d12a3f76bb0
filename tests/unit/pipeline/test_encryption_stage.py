"""The record-encryption stages with a fake context: a Produce's records of encrypted topics are handed to
the rewrite sealed (other topics untouched, as slices), failures answered for every partition and never
forwarded, and a Fetch response's records opened, or its partition answered CORRUPT_MESSAGE."""

from __future__ import annotations

from benchmarks.rawkafka import record_batch
from tenantry.protocol import decode
from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.headers import parse_request_header
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.fetch_request import FetchPartition, FetchRequest, FetchTopic
from tenantry.protocol.messages.fetch_response import FetchableTopicResponse, FetchResponse, PartitionData
from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
from tenantry.proxy.outcomes import Answer, AnswerBytes
from tenantry.proxy.record_encryption import RecordCipher
from tenantry.proxy.stages import encryption, rewriting
from tenantry.tenants.envelope import Envelopes
from tenantry.tenants.keystore import LocalKeyStore
from tests.unit.pipeline.fakes import FakeContext, registry
from tests.unit.pipeline.fakes import exchange as unparsed
from tests.unit.pipeline.test_login_stage import log_in
from tests.unit.pipeline.test_stages import body_of, respond

BATCH = record_batch(3, 20)  # values b"x" * 20


def exchange(message, version):
    ex = unparsed(message, version)
    ex.header = parse_request_header(ex.frame)
    return ex


async def encrypting(tmp_path, key_store: bool = True) -> FakeContext:
    ctx = FakeContext(registry(encryption={"topics": ["sec-*"]}))
    ctx.envelopes = Envelopes(LocalKeyStore(tmp_path / "keys.json")) if key_store else None
    await log_in(ctx)
    return ctx


def produce(*topics: str, acks: int = -1) -> ProduceRequest:
    return ProduceRequest(acks=acks, timeout_ms=1000, topic_data=[
        TopicProduceData(name=t, partition_data=[PartitionProduceData(index=0, records=BATCH)]) for t in topics])


async def test_only_the_encrypted_topics_records_are_sealed_and_spliced_in_by_the_rewrite(tmp_path):
    ctx = await encrypting(tmp_path)
    ex = exchange(produce("sec-cards", "public"), 9)
    assert encryption.seal(ex, ctx) is None
    assert [ref.value for ref, _ in ex.edits] == [BATCH]  # one records field: sec-cards'
    assert rewriting.rewrite(ex, ctx) is None
    frame = memoryview(b"".join(ex.parts))
    sent = decode(type(produce()), frame[parse_request_header(frame).body_offset:], 9)
    records = {t.name: bytes(t.partition_data[0].records) for t in sent.topic_data}
    assert records["acme.public"] == BATCH and records["acme.sec-cards"] != BATCH
    assert b"xxxxxxxxxx" not in records["acme.sec-cards"]
    assert ctx.meter.tenant.records_sealed == 3


async def test_a_tenant_without_encryption_topics_passes_untouched(tmp_path):
    ctx = FakeContext(registry())
    await log_in(ctx)
    ex = exchange(produce("sec-cards"), 9)
    assert encryption.seal(ex, ctx) is None and ex.edits == [] and ex.scanned is None
    fetch = exchange(FetchRequest(topics=[]), 12)
    assert encryption.open_fetched(fetch, ctx) is None and not fetch.hooks


async def test_records_that_cannot_be_sealed_are_refused_for_every_partition_never_forwarded(tmp_path):
    ctx = await encrypting(tmp_path, key_store=False)  # no key store: as if the KMS were down
    answer = encryption.seal(exchange(produce("sec-cards", "public"), 9), ctx)
    assert isinstance(answer, Answer)
    errors = {(t.name, p.error_code) for t in answer.response.responses for p in t.partition_responses}
    assert errors == {("sec-cards", ErrorCode.UNKNOWN_SERVER_ERROR), ("public", ErrorCode.UNKNOWN_SERVER_ERROR)}
    assert "record encryption" in answer.response.responses[0].partition_responses[0].error_message
    ctx = await encrypting(tmp_path)
    request = produce("sec-cards")
    request.topic_data[0].partition_data[0].records = BATCH[:-4]  # a batch that lies about its length
    answer = encryption.seal(exchange(request, 9), ctx)
    assert isinstance(answer, Answer)
    assert answer.response.responses[0].partition_responses[0].error_code == ErrorCode.CORRUPT_MESSAGE
    assert isinstance(encryption.seal(exchange(produce("sec-cards", acks=0), 9), await encrypting(
        tmp_path, key_store=False)), AnswerBytes)  # acks=0: no answer, and nothing written
    assert ctx.meter.tenant.encryption_failures["seal"] == 1


def fetch_response(records: bytes) -> FetchResponse:
    return FetchResponse(responses=[FetchableTopicResponse(topic="acme.sec-cards", partitions=[
        PartitionData(partition_index=0, high_watermark=3, records=records)])])


async def test_fetched_records_are_opened_and_damaged_ones_answered_corrupt_message(tmp_path):
    ctx = await encrypting(tmp_path)
    sealed = RecordCipher(ctx.envelopes, "acme").seal("sec-cards", memoryview(BATCH))
    for stored, error in ((sealed, 0), (sealed[:-1] + bytes([sealed[-1] ^ 1]), ErrorCode.CORRUPT_MESSAGE)):
        ex = exchange(FetchRequest(max_wait_ms=0, topics=[FetchTopic(topic="sec-cards", partitions=[
            FetchPartition(partition=0, fetch_offset=0)])]), 12)
        assert rewriting.rewrite(ex, ctx) is None and encryption.open_fetched(ex, ctx) is None  # pipeline order
        respond(ex, ctx, fetch_response(stored))
        got = decode(RESPONSES[ApiKey.FETCH], body_of(ex), 12).responses[0]
        assert got.topic == "sec-cards" and got.partitions[0].error_code == error
        records = bytes(got.partitions[0].records)
        assert (b"x" * 20 in records) if error == 0 else records == b""
    assert ctx.meter.tenant.encryption_failures["open"] == 1
    assert ctx.meter.tenant.records_opened == 3


async def test_produce_v13_names_topics_by_id_and_an_unknown_id_is_looked_up_first(tmp_path):
    import uuid

    ctx = await encrypting(tmp_path)
    known, unknown = uuid.uuid4(), uuid.uuid4()
    ctx.topic_ids.learn(known, "acme.sec-cards")
    request = ProduceRequest(acks=-1, timeout_ms=1000, topic_data=[
        TopicProduceData(topic_id=topic_id, partition_data=[PartitionProduceData(index=0, records=BATCH)])
        for topic_id in (known, unknown)])
    ex = exchange(request, 13)
    outcome = encryption.seal(ex, ctx)
    looked_up: list[set[uuid.UUID]] = []

    async def look_up(ids):
        looked_up.append(set(ids))  # the broker does not know it either: not the tenant's
    ctx.look_up_topic_ids = look_up
    from tests.unit.pipeline.fakes import outcome_of

    assert await outcome_of(outcome) is None and looked_up == [{unknown}]
    assert len(ex.edits) == 1 and bytes(ex.edits[0][0].value) == BATCH  # the known id's records, sealed
