"""The benchmark harness's own parts: the raw client's Produce body, the report and its targets table."""

from __future__ import annotations

import json

from benchmarks import report
from benchmarks.harness import BENCH_PASSWORD, tenants_config
from benchmarks.rawkafka import PRODUCE_VERSION, produce_body, record_batch
from tenantry.protocol import decode
from tenantry.protocol.messages.produce_request import ProduceRequest
from tenantry.protocol.records import count_records
from tenantry.tenants.auth import SaslExchange
from tenantry.tenants.registry import Registry


def test_the_produce_body_carries_the_prebuilt_batch_unchanged():
    batch = record_batch(10, 100)
    parts = produce_body("orders", 2, batch)
    assert parts[1] is batch  # sent as is, never copied into the request
    request = decode(ProduceRequest, memoryview(b"".join(parts)), PRODUCE_VERSION)
    partition = request.topic_data[0].partition_data[0]
    assert request.topic_data[0].name == "orders" and partition.index == 2 and request.acks == -1
    assert bytes(partition.records) == batch and count_records(batch) == 10


def test_generated_bench_tenants_log_in_with_the_bench_password():
    registry = Registry.from_config(tenants_config(3, users_per_tenant=2))
    assert sorted(registry.tenants) == ["t0000", "t0001", "t0002"]
    assert registry.lookup("t0002-u1") is not None
    # A SCRAM credential is made once and shared: check it verifies the password through a real exchange.
    from scramp import ScramClient

    client = ScramClient(["SCRAM-SHA-256"], "t0001-u0", BENCH_PASSWORD)
    server = SaslExchange(registry, "SCRAM-SHA-256", b"secret")
    client.set_server_first(server.step(client.get_client_first().encode()).decode())
    client.set_server_final(server.step(client.get_client_final().encode()).decode())
    assert server.principal is not None and server.principal.tenant.id == "t0001"


def sample_results() -> dict:
    side = {"mb_per_sec": 50.0, "records_per_sec": 51200.0}
    proxied = {**side, "proxy_cpu_pct": 10.0, "proxy_cpu_s_per_gb": 2.0}
    return {
        "meta": {"started": "2026-11-22T17:00:00", "kafka_version": "4.3.1", "quick": True, "cpus": 2,
                 "seconds": 170.0, "scenarios": ["ceiling", "latency", "connections"]},
        "ceiling": {"records": 1000, "produce_direct": side, "produce_proxy": {**proxied, "mb_per_sec": 45.0},
                    "consume_direct": side, "consume_proxy": proxied, "ratio_produce": 0.9, "ratio_consume": 1.0,
                    "produce_transparent": {**proxied, "mb_per_sec": 48.0, "proxy_cpu_s_per_gb": 1.5},
                    "consume_transparent": proxied, "ratio_produce_transparent": 0.96,
                    "ratio_consume_transparent": 1.0},
        "latency": {"points": [{"load": load, "records_per_sec": 100.0,
                                "direct": {"p50_ms": 2.0, "p99_ms": 10.0, "p999_ms": 20.0},
                                "proxy": {"p50_ms": 3.0, "p99_ms": 13.0, "p999_ms": 25.0},
                                "added_ms": {"p50": 1.0, "p99": 3.0, "p999": 5.0}, "rounds": 3,
                                "spread_ms": {"direct": {"p99": [9.0, 40.0]}, "proxy": {"p99": [12.0, 30.0]}},
                                "in_proxy_ms": {"p50": 0.2, "p99": 0.5, "p999": 2.5}} for load in (0.25, 0.5, 0.75)]},
        "connections": {"tenants": 10, "points": [{"connections": 10000, "opened": 10000, "logins_per_sec": 200.0,
                                                    "proxy_rss_mb": 84.0, "kb_per_connection": 5.6}]},
    }


def test_the_report_judges_each_target_and_writes_json_markdown_and_plots(tmp_path):
    summary = report.write(sample_results(), tmp_path)
    lines = {line.split("  ")[0]: line for line in summary.splitlines()}
    assert lines["produce vs direct, tenant mode"].split()[-1] == "met"  # 0.90 is the goal itself
    assert lines["proxy CPU s per GB produced, tenant mode"].split()[-1] == "met"  # 2.0 of 2.5
    assert "MISSED" in lines["proxy CPU s per GB consumed, tenant mode"]  # 2.0 of 0.7
    assert "MISSED" in lines["p99 added at 50% load, tenant mode, end to end (ms)"]  # 3 ms added, 1 allowed
    assert lines["p99 added at 50% load, tenant mode, in the proxy (ms, bucket bound)"].split()[-1] == "met"
    assert "not run" in lines["quota accuracy (worst, % off)"]
    assert "84.00" in lines["RSS with 10,000 idle tenant connections (MB)"]
    assert lines["RSS with 10,000 idle tenant connections (MB)"].split()[-1] == "met"  # 84 of 150
    assert json.loads((tmp_path / "results.json").read_text())["latency"]["p99_added_at_50"] == 3.0
    markdown = (tmp_path / "report.md").read_text()
    assert "| produce | 50.0 | 45.0 | 0.90 | 2.00 | 48.0 | 0.96 | 1.50 |" in markdown
    for image in ("ceiling.png", "latency.png", "connections.png"):
        assert (tmp_path / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"({image})" in markdown


def test_the_consumer_moves_past_complete_batches_only():
    from benchmarks.workload import next_offset

    first, second = record_batch(3, 10), record_batch(2, 10)  # both start at offset 0: as a broker would renumber
    offset, used = next_offset(memoryview(first), 0)
    assert (offset, used) == (3, len(first))
    offset, used = next_offset(memoryview(first + second[:20]), 0)  # a truncated batch at the end
    assert (offset, used) == (3, len(first))


def test_jains_index_is_one_for_equal_shares_and_one_over_n_for_a_single_winner():
    from benchmarks.scenarios.tenants import jain

    assert jain([1.0, 1.0, 1.0, 1.0]) == 1.0
    assert jain([1.0, 0.0, 0.0, 0.0]) == 0.25


def test_a_peer_column_appears_when_kroxylicious_ran(tmp_path):
    results = sample_results()
    ceiling = results["ceiling"]
    ceiling["produce_kroxylicious"] = {**ceiling["produce_proxy"], "mb_per_sec": 37.5, "proxy_cpu_s_per_gb": 5.0}
    ceiling["consume_kroxylicious"] = ceiling["consume_proxy"]
    ceiling["ratio_produce_kroxylicious"], ceiling["ratio_consume_kroxylicious"] = 0.75, 1.0
    for point in results["latency"]["points"]:
        point["kroxylicious"] = {"p50_ms": 4.0, "p99_ms": 15.0, "p999_ms": 30.0}
    ceiling["runs"] = {"produce_direct": [{"mb_per_sec": 44.6}, {"mb_per_sec": 55.4}]}
    report.write(results, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| produce | 50.0 (45 to 55) | 45.0 | 0.90 | 2.00 | 48.0 | 0.96 | 1.50 | 37.5 | 0.75 | 5.00 |" in markdown
    assert ("| 50% | 100 | 2 / 3 (+1) / 4 | 10 / 13 (+3) / 15 | 20 / 25 (+5) / 30 | 9 to 40 / 12 to 30 "
            "| ≤ 0.2 / ≤ 0.5 / ≤ 2.5 |") in markdown


def test_a_scraped_histogram_is_differenced_and_read_as_a_bucket_bound():
    from benchmarks.scrape import Histogram

    before = Histogram({0.001: 10, 0.005: 10, float("inf"): 10})
    after = Histogram({0.001: 108, 0.005: 119, float("inf"): 120})
    run = after - before  # 110 requests: 98 under 1 ms, 11 more under 5 ms, 1 slower
    assert run.count == 110
    assert run.quantile_bound(0.5) == 0.001
    assert run.quantile_bound(0.99) == 0.005
    assert run.quantile_bound(0.999) == float("inf")
    assert (run + run).count == 220 and Histogram().quantile_bound(0.99) == 0.0
