"""The counters behind /metrics: record counting from batch headers, error codes in responses, histograms,
capped labels, quota-use rates, and the rendered families."""

from __future__ import annotations

from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tenantry.protocol.envelope import request_frame, response_frame
from tenantry.protocol.headers import parse_request_header
from tenantry.protocol.messages.produce_request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)
from tenantry.protocol.messages.produce_response import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from tenantry.protocol.records import count_records
from tenantry.proxy.config import load_config
from tenantry.proxy.metrics import build_registry, take_view
from tenantry.proxy.monitor import UsageWindow
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.server import ProxyServer
from tenantry.proxy.stats import OTHER, CappedLabels, Histogram, Stats
from tenantry.proxy.traffic import TrafficMeter
from tenantry.tenants.quotas import QuotaSpec
from tenantry.tenants.registry import Registry, Tenant


def v2_batch(count: int) -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    for i in range(count):
        builder.append(i, timestamp=None, key=None, value=b"v%d" % i, headers=[])
    return bytes(builder.build())


def legacy_set(count: int) -> bytes:
    builder = LegacyRecordBatchBuilder(1, 0, 1 << 20)
    for i in range(count):
        builder.append(i, timestamp=None, key=None, value=b"v")
    return bytes(builder.build())


def test_records_are_counted_from_v2_batch_headers():
    assert count_records(v2_batch(7) + v2_batch(3)) == 10


def test_a_truncated_last_batch_is_not_counted():
    data = v2_batch(4) + v2_batch(5)
    assert count_records(data[:-3]) == 4


def test_legacy_message_sets_count_one_per_entry_and_empty_is_zero():
    assert count_records(legacy_set(3)) == 3
    assert count_records(b"") == 0 and count_records(None) == 0


def test_garbage_is_never_counted_as_records():
    assert count_records(b"\x00" * 11) == 0
    assert count_records(b"\x00" * 8 + b"\xff\xff\xff\xff" + b"\x00" * 60) == 0  # negative length


def produce_frame(version: int = 9) -> memoryview:
    request = ProduceRequest(acks=-1, timeout_ms=1000, topic_data=[
        TopicProduceData(name="orders", partition_data=[PartitionProduceData(index=0, records=v2_batch(5)),
                                                        PartitionProduceData(index=1, records=v2_batch(2))]),
        TopicProduceData(name="audit", partition_data=[PartitionProduceData(index=0, records=v2_batch(1))]),
    ])
    return memoryview(request_frame(request, version, 7, "app"))[4:]


def test_a_produce_request_counts_its_records_per_tenant_and_per_topic():
    stats = Stats(label_limit=10)
    meter = TrafficMeter(stats)
    meter.logged_in("acme", lambda _: None)
    frame = produce_frame()
    meter.produced(9, frame, parse_request_header(frame).body_offset)
    assert stats.tenant("acme").records_in == 8
    topics = stats.tenant("acme").topics
    assert topics is not None
    assert {t: v.records_in for t, v in topics.values.items()} == {"orders": 7, "audit": 1}


def test_every_non_zero_error_code_in_a_response_is_counted():
    stats = Stats()
    meter = TrafficMeter(stats)
    response = ProduceResponse(responses=[TopicProduceResponse(name="orders", partition_responses=[
        PartitionProduceResponse(index=0, error_code=0), PartitionProduceResponse(index=1, error_code=6),
        PartitionProduceResponse(index=2, error_code=6)])])
    body = memoryview(response_frame(response, 9, 7))[4:]
    meter.errors(0, 9, body, 5)  # v9 responses have a flexible header: correlation id + empty tagged fields
    assert dict(stats.tenant("").errors) == {(0, 6): 2}


def test_histogram_buckets_are_cumulative_and_inclusive():
    h = Histogram((0.1, 1.0))
    for v in (0.1, 0.5, 2.0):
        h.observe(v)
    assert h.cumulative() == [("0.1", 1), ("1.0", 2), ("+Inf", 3)]
    assert h.total == 2.6


def test_client_chosen_labels_are_capped_and_the_rest_counted_as_other():
    capped = CappedLabels(2)
    for name in ("a", "b", "c", "d"):
        capped.get(name).requests += 1
    assert {k: v.requests for k, v in capped.values.items()} == {"a": 1, "b": 1, OTHER: 2}


def test_quota_use_is_a_rate_over_the_window():
    config = load_config(overrides={"upstream": ["127.0.0.1:9092"]})
    now = [0.0]
    book = QuotaBook(config, clock=lambda: now[0])
    tenant = Tenant("acme", "acme.", quotas=QuotaSpec(produce_bytes_per_sec=1000.0))
    meters = book.for_tenant(tenant)
    usage = UsageWindow(book, window=10.0)
    usage.sample(0.0)
    meters.record("produce", "alice", 4000)
    now[0] = 5.0
    usage.sample(5.0)
    assert usage.rates()["acme"]["produce"] == 800.0
    assert usage.utilisation() == {("acme", "produce"): 0.8}


def test_removed_tenants_lose_their_series_on_reload():
    stats = Stats()
    stats.tenant("").bytes_in = 1  # connections not logged in: never forgotten
    stats.tenant("acme").bytes_in = 1
    stats.tenant("gone").bytes_in = 1
    stats.forget_tenants({"acme"})
    assert set(stats.tenants) == {"", "acme"}


def scraped(server: ProxyServer) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(build_registry(take_view(server))).decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_configured_tenants_and_known_label_values_are_served_at_zero_before_any_traffic():
    registry = Registry({"acme": Tenant("acme", "acme.")})
    server = ProxyServer(load_config(overrides={"upstream": ["127.0.0.1:9092"]}), registry)
    samples = scraped(server)
    assert ({"tenant": "acme"}, 0.0) in samples["tenantry_bytes_in_total"]
    quotas = {labels["quota"] for labels, _ in samples["tenantry_throttle_seconds_total"] if labels["tenant"] == "acme"}
    assert quotas == {"produce", "fetch", "requests", "connections", "topic_mutations"}
    assert {labels["result"] for labels, _ in samples["tenantry_config_reloads_total"]} == {"ok", "refused"}
    assert samples["tenantry_tenants"] == [({}, 1.0)]


def test_errors_and_apis_are_labelled_by_kafkas_names():
    server = ProxyServer(load_config(overrides={"upstream": ["127.0.0.1:9092"]}), Registry())
    server.stats.tenant("acme").errors[(0, 6)] = 2
    server.stats.tenant("acme").requests[0] = 5
    samples = scraped(server)
    assert ({"tenant": "acme", "api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER"}, 2.0) in \
        samples["tenantry_response_errors_total"]
    assert ({"tenant": "acme", "api": "Produce"}, 5.0) in samples["tenantry_requests_total"]


def test_a_server_that_is_draining_is_not_ready():
    server = ProxyServer(load_config(overrides={"upstream": ["127.0.0.1:9092"]}), Registry())
    assert not server.health.ready  # not until the upstream answered once
    server.health.started()
    assert server.health.ready
    server.health.listener_failures[2] = "port 9102: in use"
    assert not server.health.ready
    assert server.health.readiness()["broker_listeners_failed"] == {"2": "port 9102: in use"}
    server.health.listener_failures.clear()
    server.draining = True
    assert not server.health.ready and server.health.readiness()["draining"] is True


