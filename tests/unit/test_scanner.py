"""The hot path finds broker addresses and splices new ones in without touching record batches."""

import uuid

from tenantry.protocol import decode, encode, scan, splice
from tenantry.protocol.messages.fetch_response import (
    FetchableTopicResponse,
    FetchResponse,
    NodeEndpoint,
    PartitionData,
)
from tenantry.protocol.messages.find_coordinator_response import Coordinator, FindCoordinatorResponse
from tenantry.protocol.messages.metadata_response import MetadataResponse, MetadataResponseBroker
from tenantry.proxy.rewrite.rewriter import ADDRESSES as ADDRESS_ENTITIES
from tenantry.proxy.rewrite.rewriter import Addresses, RequestContext, Rewriter
from tenantry.proxy.rewrite.topic_ids import TopicIds

RECORDS = b"\x00" * 61 + b"record-batch-bytes" * 100


def port_for(node_id: int) -> int:
    return 30000 + node_id


def rewritten(cls, message, version):
    """The response body as the transparent proxy rewrites it (a correlation id in front, as on the wire)."""
    wire = memoryview(b"\x00\x00\x00\x01" + encode(message, version))
    addresses = Addresses("proxy.local", port_for)
    chunks = Rewriter(None, TopicIds()).response(cls.API_KEY, version, wire, 4, RequestContext(), addresses)
    return wire, chunks, decode(cls, b"".join(chunks), version)


def test_metadata_brokers_get_the_proxy_host_and_per_node_ports():
    message = MetadataResponse(brokers=[MetadataResponseBroker(1, "kafka-1.internal", 9092, "rack-a"),
                                        MetadataResponseBroker(7, "kafka-7.internal", 9093, None)])
    for version in (0, 9, 12, 13):
        _, _, out = rewritten(MetadataResponse, message, version)
        assert [(b.node_id, b.host, b.port) for b in out.brokers] == [
            (1, "proxy.local", 30001), (7, "proxy.local", 30007)]


def test_find_coordinator_single_and_batched_forms():
    v3 = FindCoordinatorResponse(node_id=2, host="kafka-2", port=9092)
    assert rewritten(FindCoordinatorResponse, v3, 3)[2].port == 30002
    v4 = FindCoordinatorResponse(coordinators=[Coordinator("group-a", 2, "kafka-2", 9092),
                                               Coordinator("group-b", -1, "", -1, error_code=15)])
    out = rewritten(FindCoordinatorResponse, v4, 4)[2]
    assert [(c.host, c.port) for c in out.coordinators] == [("proxy.local", 30002), ("", -1)]


def fetch_with_node_endpoints() -> FetchResponse:
    return FetchResponse(
        responses=[FetchableTopicResponse(topic_id=uuid.uuid4(), partitions=[
            PartitionData(partition_index=0, records=RECORDS),
            PartitionData(partition_index=1, error_code=6, records=None)])],
        node_endpoints=[NodeEndpoint(3, "kafka-3.internal.example", 9092, None)],
    )


def test_fetch_node_endpoints_in_a_tagged_field_are_rewritten_and_the_tag_size_fixed():
    _wire, _, out = rewritten(FetchResponse, fetch_with_node_endpoints(), 16)
    assert [(n.node_id, n.host, n.port) for n in out.node_endpoints] == [(3, "proxy.local", 30003)]
    assert bytes(out.responses[0].partitions[0].records) == RECORDS


def test_record_batches_are_passed_as_slices_of_the_original_buffer():
    wire, chunks, _ = rewritten(FetchResponse, fetch_with_node_endpoints(), 17)
    holding_records = [c for c in chunks if RECORDS in bytes(c)]
    assert len(holding_records) == 1
    assert isinstance(holding_records[0], memoryview) and holding_records[0].obj is wire.obj


def test_scanner_skips_records_without_reading_them():
    message = fetch_with_node_endpoints()
    message.node_endpoints = []
    wire = memoryview(encode(message, 16))
    assert scan(FetchResponse, 16, wire, 0, ADDRESS_ENTITIES) == []


def test_the_upstream_addresses_seen_are_reported_for_listeners():
    message = MetadataResponse(brokers=[MetadataResponseBroker(4, "kafka-4", 9094, None)])
    wire = memoryview(b"\x00\x00\x00\x01" + encode(message, 12))
    addresses = Addresses("proxy.local", port_for)
    Rewriter(None, TopicIds()).response(3, 12, wire, 4, RequestContext(), addresses)
    assert addresses.seen == [(4, "kafka-4", 9094)]


def test_splice_with_no_changes_returns_the_original_bytes():
    wire = memoryview(encode(fetch_with_node_endpoints(), 16))
    assert b"".join(splice(wire, [])) == bytes(wire)


def test_unknown_tagged_fields_survive_a_rewrite():
    message = MetadataResponse(brokers=[MetadataResponseBroker(1, "kafka-1", 9092, None,
                                                               unknown_tags={999: b"future"})],
                               unknown_tags={1000: b"also-future"})
    out = rewritten(MetadataResponse, message, 12)[2]
    assert out.brokers[0].unknown_tags == {999: b"future"}
    assert out.unknown_tags == {1000: b"also-future"}


def test_the_client_id_gets_the_prefix_on_every_request_whatever_the_connection_sent_before():
    from tenantry.protocol.headers import encode_request_header, parse_request_header
    from tenantry.protocol.messages.api_keys import ApiKey
    from tenantry.tenants.naming import Namespace

    rewriter = Rewriter(Namespace("acme."), TopicIds())
    sent = [(ApiKey.METADATA, 12, "app"), (ApiKey.METADATA, 12, "app"), (ApiKey.METADATA, 4, "other"),
            (ApiKey.JOIN_GROUP, 9, "app"), (ApiKey.METADATA, 12, None), (ApiKey.METADATA, 12, "x" * 1000),
            *((ApiKey.METADATA, 12, f"c{i}") for i in range(10)), (ApiKey.METADATA, 12, "app")]
    for key, version, client_id in sent:
        frame = memoryview(encode_request_header(key, version, 7, client_id) + b"body")
        rewritten = rewriter._header(frame, parse_request_header(frame))
        got = parse_request_header(memoryview(rewritten + b"body"))
        expected = (client_id or "") if key == ApiKey.JOIN_GROUP else "acme." + (client_id or "")
        assert (got.api_key, got.api_version, got.client_id) == (key, version, expected)
        assert bytes(memoryview(rewritten + b"body")[got.body_offset:]) == b"body"
        assert len(rewriter._headers) <= 4  # per connection, whatever the client sends


def test_a_produce_scanned_once_by_metering_is_rewritten_as_if_walked_again():
    from tenantry.protocol.headers import encode_request_header, parse_request_header
    from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
    from tenantry.proxy.traffic import PRODUCE_SCAN
    from tenantry.tenants.naming import Namespace

    topic_ids = TopicIds()
    topic_id = uuid.uuid4()
    topic_ids.learn(topic_id, "acme.orders")
    for version in range(3, 14):
        request = ProduceRequest(transactional_id="tx", acks=-1, topic_data=[TopicProduceData(
            name="orders", topic_id=topic_id, partition_data=[PartitionProduceData(index=0, records=b"batch")])])
        frame = memoryview(encode_request_header(0, version, 1, "app") + encode(request, version))
        header = parse_request_header(frame)
        scanned = scan(ProduceRequest, version, frame, header.body_offset, PRODUCE_SCAN)
        assert {r.entity for r in scanned} >= {"records", "transactionalId"}
        once, _ = Rewriter(Namespace("acme."), topic_ids).request(frame, header, scanned=scanned)
        again, _ = Rewriter(Namespace("acme."), topic_ids).request(frame, header)
        assert b"".join(once) == b"".join(again)
        assert b"acme.tx" in b"".join(once)
