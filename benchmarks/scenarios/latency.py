"""Latency at fixed load: ProducerPerformance at 25%, 50% and 75% of the direct ceiling, acks=all,
straight to the broker and through the proxy in tenant mode, as users run it (SCRAM-SHA-512, quotas
configured too high to bind); the proxy's added p50, p99 and p99.9 (ms).

Two measures, because on a shared 2-core machine the broker's own tail moves by tens of milliseconds
from one run to the next:
- end to end, ProducerPerformance's steady-state percentiles (a warm-up left out), each side run
  `rounds` times in alternating order, the median per side; the spread is reported with it;
- in the proxy, its own `tenantry_api_latency_seconds{api="Produce",stage="proxy"}` histogram over the
  proxied runs: time from a request's last byte read to its forwarding, plus the same for the response.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks import kafka_tools
from benchmarks.harness import BENCH_PASSWORD, NON_BINDING_QUOTAS, Bench, tenants_config
from benchmarks.peers.kroxylicious import kroxylicious
from benchmarks.scrape import Histogram

LOADS = (0.25, 0.50, 0.75)
PERCENTILES = {"p50": 0.5, "p99": 0.99, "p999": 0.999}
IN_PROXY = ("tenantry_api_latency_seconds", {"api": "Produce", "stage": "proxy"})


def run(bench: Bench, ceiling_records_per_sec: float) -> dict[str, Any]:
    seconds, warmup_seconds, rounds = (7, 3, 1) if bench.quick else (20, 5, 3)
    version = bench.kafka_version
    points = []
    tenants = tenants_config(1, quotas=NON_BINDING_QUOTAS, mechanism="SCRAM-SHA-512", auto_create=True)
    login = kafka_tools.sasl_config(bench.workdir / "latency-login.properties", "t0000-u0", BENCH_PASSWORD)
    with bench.proxy(tenants=tenants) as proxy:
        bar = bench.progress(len(LOADS) * 2 * rounds, "latency")
        for load in LOADS:
            rate = ceiling_records_per_sec * load
            runs: dict[str, list[dict[str, float]]] = {"direct": [], "proxy": []}
            in_proxy = Histogram()
            for round_ in range(rounds):
                sides = [("direct", bench.broker.bootstrap), ("proxy", proxy.bootstrap)]
                if (round_ + LOADS.index(load)) % 2:  # neither side always runs on the warmer broker
                    sides.reverse()
                for side, bootstrap in sides:
                    before = proxy.histogram(*IN_PROXY)
                    runs[side].append(kafka_tools.produce(
                        version, bootstrap, f"latency-{side}-{int(load * 100)}-{round_}", int(rate * seconds),
                        throughput=rate, warmup_records=int(rate * warmup_seconds),
                        config=login if side == "proxy" else None))
                    if side == "proxy":
                        in_proxy += proxy.histogram(*IN_PROXY) - before
                    bar.update()
            median = {side: {f"{p}_ms": statistics.median(r[f"{p}_ms"] for r in measured) for p in PERCENTILES}
                      for side, measured in runs.items()}
            point: dict[str, Any] = {
                "load": load, "records_per_sec": rate, "seconds": seconds, "rounds": rounds, "runs": runs,
                "direct": median["direct"], "proxy": median["proxy"],
                "added_ms": {p: median["proxy"][f"{p}_ms"] - median["direct"][f"{p}_ms"] for p in PERCENTILES},
                "spread_ms": {side: {p: [min(r[f"{p}_ms"] for r in measured), max(r[f"{p}_ms"] for r in measured)]
                                     for p in PERCENTILES} for side, measured in runs.items()},
                "in_proxy_ms": {p: in_proxy.quantile_bound(q) * 1000 for p, q in PERCENTILES.items()},
                "in_proxy_requests": in_proxy.count}
            if bench.peers:
                with kroxylicious(bench.broker.bootstrap, bench.workdir) as peer:
                    point["kroxylicious"] = kafka_tools.produce(
                        version, peer.bootstrap, f"latency-kroxylicious-{int(load * 100)}", int(rate * seconds),
                        throughput=rate, warmup_records=int(rate * warmup_seconds))
            points.append(point)
        bar.close()
    return {"points": points}
