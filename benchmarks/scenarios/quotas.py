"""Quotas: how close the measured rate comes to the configured one, and how well a tenant at its quota
is kept from slowing another.

Accuracy: raw clients produce (and consume) flat out through the proxy against produce quotas of 1 and
4 MB/s and a fetch quota of 2 MB/s, measured over the window after the first 3 s (the bucket's burst).
Isolation: a victim tenant produces a steady 1 MB/s while a neighbour produces flat out; the victim's
produce latency alone and beside the neighbour, straight to the broker (no quota possible) and through
the proxy (the neighbour held to 4 MB/s).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from benchmarks.harness import BENCH_PASSWORD, Bench, tenants_config
from benchmarks.rawkafka import Connection, record_batch
from benchmarks.workload import Tally, consume, create_topic, produce_at, produce_flat_out

BATCH = record_batch(16, 1000)
BIG = record_batch(64, 1000)
PRODUCE_QUOTAS = {"t0000": 1_000_000, "t0001": 4_000_000}
FETCH_QUOTA = ("t0002", 2_000_000)
NEIGHBOUR_QUOTA = 4_000_000
VICTIM_RATE = 1_000_000


async def _login(address: str, tenant: str | None) -> Connection:
    if tenant is None:
        return await Connection.open(address)
    return await Connection.open(address, f"{tenant}-u0", BENCH_PASSWORD)


async def _accuracy(address: str, seconds: float) -> list[dict[str, Any]]:
    producers = []
    for tenant, quota in PRODUCE_QUOTAS.items():
        conn = await _login(address, tenant)
        await create_topic(conn, "quota")
        producers.append((tenant, quota, conn))
    tenant, quota = FETCH_QUOTA
    reader = await _login(address, tenant)
    await create_topic(reader, "quota")
    filled = Tally(window=(0, float("inf")))
    # Enough data to read flat out for the whole window at well over the quota.
    while filled.bytes < quota * (seconds + 6) * 1.5:
        await produce_flat_out(reader, "quota", BIG, time.monotonic() + 1, filled)
    start = time.monotonic() + 3  # the bucket's burst is spent in the first seconds: not counted
    until = start + seconds
    runs = []
    for tenant_id, rate, conn in producers:
        tally = Tally(window=(start, until))
        runs.append(("produce", tenant_id, rate, conn, tally, produce_flat_out(conn, "quota", BIG, until, tally)))
    fetched = Tally(window=(start, until))
    runs.append(("fetch", tenant, quota, reader, fetched, consume(reader, "quota", until, fetched)))
    await asyncio.gather(*(r[5] for r in runs))
    out = []
    for kind, tenant_id, rate, conn, tally, _ in runs:
        conn.close()
        out.append({"kind": kind, "tenant": tenant_id, "quota_mb_per_sec": rate / 1e6,
                    "measured_mb_per_sec": tally.rate() / 1e6,
                    "error_pct": 100 * (tally.rate() - rate) / rate, "errors": dict(tally.errors)})
    return out


async def _isolation(address: str, seconds: float, login: bool, with_neighbour: bool, tag: str) -> dict[str, Any]:
    victim = await _login(address, "t0003" if login else None)
    neighbour = await _login(address, "t0004" if login else None)
    victim_topic, neighbour_topic = (f"victim-{tag}", f"noisy-{tag}") if login else (
        f"t0003.victim-{tag}", f"t0004.noisy-{tag}")
    await create_topic(victim, victim_topic)
    await create_topic(neighbour, neighbour_topic)
    start = time.monotonic() + 2
    until = start + seconds
    tally, noisy = Tally(window=(start, until)), Tally(window=(start, until))
    tasks = [produce_at(victim, victim_topic, BATCH, VICTIM_RATE / len(BATCH), until, tally)]
    if with_neighbour:
        tasks.append(produce_flat_out(neighbour, neighbour_topic, BIG, until, noisy))
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.5)
    victim.close()
    neighbour.close()
    latencies = sorted(tally.latencies)
    return {"neighbour": with_neighbour, "victim_mb_per_sec": tally.rate() / 1e6,
            "neighbour_mb_per_sec": noisy.rate() / 1e6,
            "victim_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
            "victim_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
            "errors": dict(tally.errors)}


def run(bench: Bench) -> dict[str, Any]:
    seconds = 8 if bench.quick else 30
    config = tenants_config(5)
    for entry in config["tenants"]:
        if entry["id"] in PRODUCE_QUOTAS:
            entry["quotas"] = {"produce_bytes_per_sec": PRODUCE_QUOTAS[entry["id"]]}
        if entry["id"] == FETCH_QUOTA[0]:
            entry["quotas"] = {"fetch_bytes_per_sec": FETCH_QUOTA[1]}
        if entry["id"] == "t0004":
            entry["quotas"] = {"produce_bytes_per_sec": NEIGHBOUR_QUOTA}
    bar = bench.progress(5, "quotas")
    with bench.proxy(tenants=config) as proxy:
        accuracy = asyncio.run(_accuracy(proxy.bootstrap, seconds))
        bar.update()
        isolation = []
        for login, address in ((False, bench.broker.bootstrap), (True, proxy.bootstrap)):
            for with_neighbour in (False, True):
                tag = f"{'p' if login else 'd'}{int(with_neighbour)}"
                point = asyncio.run(_isolation(address, seconds, login, with_neighbour, tag))
                point["side"] = "proxy" if login else "direct"
                isolation.append(point)
                bar.update()
    bar.close()
    return {"accuracy": accuracy, "isolation": isolation,
            "worst_error_pct": max(abs(a["error_pct"]) for a in accuracy)}
