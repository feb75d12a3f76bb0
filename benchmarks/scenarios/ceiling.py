"""Ceiling: Kafka's ProducerPerformance and ConsumerPerformance, 1 KiB records, acks=all, unthrottled,
straight to the broker and through a transparent proxy, in ABBA order (direct, proxy, proxy, direct)
so a broker still warming up favours neither side. The full run repeats the ABBA round: one run on this
shared machine can read 115 MB/s and the next 174, so each side's figure is the median of its runs."""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks import kafka_tools
from benchmarks.harness import Bench
from benchmarks.peers.kroxylicious import kroxylicious


def run(bench: Bench) -> dict[str, Any]:
    records, rounds = (200_000, 1) if bench.quick else (500_000, 2)
    version = bench.kafka_version
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in ("produce_direct", "produce_proxy",
                                                                "consume_direct", "consume_proxy")}
    with bench.proxy() as proxy:
        bar = bench.progress(2 + 8 * rounds, "ceiling")
        # Full-size warm-up through both paths: the broker's JIT, page cache and log segments.
        kafka_tools.produce(version, bench.broker.bootstrap, "ceiling-warmup-d", records)
        bar.update()
        kafka_tools.produce(version, proxy.bootstrap, "ceiling-warmup-p", records)
        bar.update()
        order = [(side, address, f"ceiling-{side}-{round_}-{i}") for round_ in range(rounds)
                 for i, (side, address) in enumerate([("direct", bench.broker.bootstrap), ("proxy", proxy.bootstrap),
                                                      ("proxy", proxy.bootstrap), ("direct", bench.broker.bootstrap)])]
        for kind in ("produce", "consume"):
            for side, bootstrap, topic in order:
                cpu_before, _ = proxy.usage()
                started = time.monotonic()
                if kind == "produce":
                    result = kafka_tools.produce(version, bootstrap, topic, records)
                else:
                    result = kafka_tools.consume(version, bootstrap, topic, records)
                elapsed = time.monotonic() - started
                cpu_after, rss = proxy.usage()
                result["proxy_cpu_pct"] = 100 * (cpu_after - cpu_before) / elapsed
                result["proxy_rss_mb"] = rss / 1e6
                runs[f"{kind}_{side}"].append(result)
                bar.update()
        bar.close()
    if bench.peers:
        runs.update(_peer(bench, records))
    summary: dict[str, Any] = {"records": records, "record_size": 1024, "runs": runs}
    for key, measured in runs.items():
        summary[key] = {f: statistics.median(r[f] for r in measured) for f in measured[0]}
    for kind in ("produce", "consume"):
        summary[f"ratio_{kind}"] = summary[f"{kind}_proxy"]["mb_per_sec"] / summary[f"{kind}_direct"]["mb_per_sec"]
        if bench.peers:
            summary[f"ratio_{kind}_kroxylicious"] = (summary[f"{kind}_kroxylicious"]["mb_per_sec"]
                                                     / summary[f"{kind}_direct"]["mb_per_sec"])
    return summary


def _peer(bench: Bench, records: int) -> dict[str, list[dict[str, float]]]:
    """Kroxylicious in pass-through: the same runs after a warm-up (its JIT needs one more than we do)."""
    version = bench.kafka_version
    runs: dict[str, list[dict[str, float]]] = {"produce_kroxylicious": [], "consume_kroxylicious": []}
    with kroxylicious(bench.broker.bootstrap, bench.workdir) as bootstrap:
        bar = bench.progress(5, "ceiling, Kroxylicious")
        kafka_tools.produce(version, bootstrap, "ceiling-warmup-k", records)
        bar.update()
        for topic in ("ceiling-k1", "ceiling-k2"):
            runs["produce_kroxylicious"].append(kafka_tools.produce(version, bootstrap, topic, records))
            bar.update()
        for topic in ("ceiling-k1", "ceiling-k2"):
            runs["consume_kroxylicious"].append(kafka_tools.consume(version, bootstrap, topic, records))
            bar.update()
        bar.close()
    return runs
