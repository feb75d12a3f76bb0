"""Latency at fixed load: ProducerPerformance at 25%, 50% and 75% of the direct ceiling, acks=all,
straight to the broker and through the proxy; the proxy's added p50, p99 and p99.9 (ms)."""

from __future__ import annotations

from typing import Any

from benchmarks import kafka_tools
from benchmarks.harness import Bench
from benchmarks.peers.kroxylicious import kroxylicious

LOADS = (0.25, 0.50, 0.75)


def run(bench: Bench, ceiling_records_per_sec: float) -> dict[str, Any]:
    seconds = 10 if bench.quick else 45
    version = bench.kafka_version
    points = []
    with bench.proxy() as proxy:
        bar = bench.progress(len(LOADS) * 2, "latency")
        for load in LOADS:
            rate = ceiling_records_per_sec * load
            records = int(rate * seconds)
            measured = {}
            # Direct first at one load, proxy first at the next: neither side always runs on a warmer broker.
            sides = [("direct", bench.broker.bootstrap), ("proxy", proxy.bootstrap)]
            if load == LOADS[1]:
                sides.reverse()
            for side, bootstrap in sides:
                measured[side] = kafka_tools.produce(version, bootstrap, f"latency-{side}-{int(load * 100)}",
                                                     records, throughput=rate)
                bar.update()
            added = {p: measured["proxy"][f"{p}_ms"] - measured["direct"][f"{p}_ms"] for p in ("p50", "p99", "p999")}
            if bench.peers:
                with kroxylicious(bench.broker.bootstrap, bench.workdir) as peer:
                    kafka_tools.produce(version, peer, "latency-kroxylicious-warmup", records // 2, throughput=rate)
                    measured["kroxylicious"] = kafka_tools.produce(
                        version, peer, f"latency-kroxylicious-{int(load * 100)}", records, throughput=rate)
            points.append({"load": load, "records_per_sec": rate, "seconds": seconds, "direct": measured["direct"],
                           "proxy": measured["proxy"], "added_ms": added, "kroxylicious": measured.get("kroxylicious")})
        bar.close()
    return {"points": points}
