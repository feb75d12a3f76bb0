"""A fleet: 1, 2 and 3 replicas (separate processes, each its own ports) and 2 and 3 workers (one `--workers`
process), all with quota_coordination = kafka.

Accuracy: tenant t0000 has a 4 MB/s produce quota; three raw clients produce to it flat out, spread over
the replicas round-robin (with workers, the kernel spreads them), and the acknowledged bytes after the
coordination has settled are compared with the quota. Aggregate: tenant t0001 (no quota) produces flat out
with one client per replica (per worker), beside a direct-to-broker run of as many clients. Coordination
traffic: each replica's published and received report bytes per second, from its own counters.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from typing import Any

from benchmarks.harness import BENCH_PASSWORD, Bench, Proxy, tenants_config
from benchmarks.rawkafka import Connection, record_batch
from benchmarks.scrape import total
from benchmarks.workload import Tally, create_topic, produce_flat_out

BIG = record_batch(64, 1000)
QUOTA = 4_000_000
SETTLE = 6.0  # the slices follow the demand about three intervals after it moves


async def _flat_out(addresses: list[str], tenant: str | None, topic: str, seconds: float) -> float:
    """Bytes per second acknowledged to one flat-out client per address, together, after SETTLE."""
    conns = [await (Connection.open(a, f"{tenant}-u0", BENCH_PASSWORD) if tenant else Connection.open(a))
             for a in addresses]
    await create_topic(conns[0], topic)
    start = time.monotonic() + SETTLE
    until = start + seconds
    tallies = [Tally(window=(start, until)) for _ in conns]
    await asyncio.gather(*(produce_flat_out(c, topic, BIG, until, t) for c, t in zip(conns, tallies, strict=True)))
    for conn in conns:
        conn.close()
    return sum(t.bytes for t in tallies) / seconds


def _wait_for_fleet(metrics: list[str], size: int, timeout: float = 60) -> None:
    """Until every worker serves its admin port and sees the whole fleet (the first one's port opens first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(total(m, "tenantry_fleet_replicas") == size for m in metrics):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the {size} workers did not all join the fleet within {timeout:.0f} s")


def _traffic(metrics: list[str]) -> float:
    return sum(total(m, "tenantry_fleet_report_bytes_total", {"direction": d})
               for m in metrics for d in ("published", "received"))


def _point(bench: Bench, proxies: list[Proxy], metrics: list[str], seconds: float, label: str,
           replicas: int) -> dict[str, Any]:
    addresses = [p.bootstrap for p in proxies]
    clients = [addresses[i % len(addresses)] for i in range(3)]
    before, t0 = _traffic(metrics), time.monotonic()
    quota_rate = asyncio.run(_flat_out(clients, "t0000", f"fleet-quota-{label.replace(' ', '-')}", seconds))
    aggregate = asyncio.run(_flat_out([addresses[i % len(addresses)] for i in range(replicas)], "t0001",
                                      f"fleet-all-{label.replace(' ', '-')}", seconds))
    traffic = (_traffic(metrics) - before) / (time.monotonic() - t0) / replicas
    return {"setup": label, "replicas": replicas, "quota_mb_per_sec": QUOTA / 1e6,
            "measured_mb_per_sec": quota_rate / 1e6, "error_pct": 100 * (quota_rate - QUOTA) / QUOTA,
            "aggregate_mb_per_sec": aggregate / 1e6, "coordination_bytes_per_sec_per_replica": traffic}


def run(bench: Bench) -> dict[str, Any]:
    seconds = 8 if bench.quick else 20
    config = tenants_config(2)
    config["tenants"][0]["quotas"] = {"produce_bytes_per_sec": QUOTA}
    points = []
    bar = bench.progress(6, "fleet")
    for n in (1, 2, 3):
        direct = asyncio.run(_flat_out([bench.broker.bootstrap] * n, None, f"fleet-direct-{n}", seconds))
        with ExitStack() as stack:
            proxies = [stack.enter_context(bench.proxy("--quota-coordination", "kafka", "--quota-coordination-topic",
                                                       f"__tenantry_fleet_bench_r{n}", tenants=config))
                       for _ in range(n)]
            _wait_for_fleet([p.metrics for p in proxies], n)
            point = _point(bench, proxies, [p.metrics for p in proxies], seconds, f"{n} replicas", n)
        point["direct_mb_per_sec"] = direct / 1e6
        points.append(point)
        bar.update()
        if n > 1:
            with bench.proxy("--quota-coordination", "kafka", "--quota-coordination-topic",
                             f"__tenantry_fleet_bench_w{n}", "--workers", str(n), tenants=config) as proxy:
                host, port = proxy.metrics.rsplit(":", 1)
                metrics = [f"{host}:{int(port) + i}" for i in range(n)]
                _wait_for_fleet(metrics, n)
                point = _point(bench, [proxy] * n, metrics, seconds, f"{n} workers", n)
            point["direct_mb_per_sec"] = direct / 1e6
            points.append(point)
        bar.update()
    bar.close()
    return {"points": points, "worst_error_pct": max(abs(p["error_pct"]) for p in points)}
