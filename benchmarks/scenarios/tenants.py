"""Many tenants: 10, 100 and 1,000 tenants, each with its own topic, a producer and a consumer, in
profiles: steady, bursty (1 s on, 3 s off, at four times the steady rate), idle (logged in, one Metadata
request every 10 s) and one noisy tenant producing flat out.

The same workload runs straight to the broker (topics named with the tenants' prefixes, no login)
and through the proxy (each tenant logged in as its own user; the noisy tenant held by a produce
quota, which only the proxy can apply). Reported: aggregate throughput, fairness among steady tenants
(Jain's index of achieved/offered), steady tenants' produce latency, and the proxy's CPU and memory.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from typing import Any

from benchmarks.harness import BENCH_PASSWORD, Bench, Proxy, tenants_config
from benchmarks.rawkafka import METADATA_VERSION, Connection, metadata_request, record_batch
from benchmarks.workload import Tally, consume, create_topic, produce_at, produce_flat_out

STEADY_TOTAL = 8_000_000  # bytes/s offered by all steady tenants together
NOISY_QUOTA = 5_000_000  # bytes/s: the noisy tenant's produce quota through the proxy
BATCH = record_batch(16, 1000)  # 16 records of 1 kB: what a client's linger would gather


def profile(i: int) -> str:
    if i == 0:
        return "noisy"
    return ("steady", "steady", "steady", "steady", "steady", "bursty", "bursty", "idle", "idle", "idle")[i % 10]


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1 when every value is equal, 1/n when one takes everything."""
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if values and any(values) else 0.0


async def _drive(address: str, count: int, seconds: float, login: bool, bar: Any) -> dict[str, Any]:
    names = [f"t{i:04d}" for i in range(count)]
    # Through the proxy a tenant names its topic plainly; the broker sees the same prefixed names.
    topic = "events-proxy" if login else None

    async def connect(i: int) -> Connection:
        if login:
            return await Connection.open(address, f"{names[i]}-u0", BENCH_PASSWORD, client_id=f"{names[i]}-app")
        return await Connection.open(address, client_id=f"{names[i]}-app")
    semaphore = asyncio.Semaphore(32)

    async def set_up(i: int) -> tuple[Connection, Connection, str]:
        async with semaphore:
            producer, consumer = await connect(i), await connect(i)
            name = topic or f"{names[i]}.events-direct"
            await create_topic(producer, name)
            bar.update()
            return producer, consumer, name
    clients = await asyncio.gather(*(set_up(i) for i in range(count)))
    steady = [i for i in range(count) if profile(i) == "steady"]
    per_steady = STEADY_TOTAL / max(len(steady), 1)
    start = time.monotonic() + 2  # the first two seconds warm up and are not counted
    until = start + seconds
    tallies: dict[int, tuple[Tally, Tally]] = {}
    tasks = []
    for i, (producer, consumer, name) in enumerate(clients):
        produced, fetched = Tally(window=(start, until)), Tally(window=(start, until))
        tallies[i] = (produced, fetched)
        kind = profile(i)
        if kind == "idle":
            tasks.append(_idle(producer, until))
            continue
        if kind == "noisy":
            tasks.append(produce_flat_out(producer, name, record_batch(64, 1000), until, produced))
        else:
            rate = per_steady / len(BATCH) * (4 if kind == "bursty" else 1)
            tasks.append(produce_at(producer, name, BATCH, rate, until, produced,
                                    on_off=(1.0, 3.0) if kind == "bursty" else None))
        tasks.append(consume(consumer, name, until, fetched))
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.5)  # the last answers
    for producer, consumer, _ in clients:
        producer.close()
        consumer.close()
    steady_rates = [tallies[i][0].rate() / per_steady for i in steady]
    steady_latencies = sorted(x for i in steady for x in tallies[i][0].latencies)
    return {
        "tenants": count, "seconds": seconds,
        "produced_mb_per_sec": sum(t[0].rate() for t in tallies.values()) / 1e6,
        "fetched_mb_per_sec": sum(t[1].rate() for t in tallies.values()) / 1e6,
        "noisy_mb_per_sec": tallies[0][0].rate() / 1e6,
        "steady_offered_mb_per_sec": STEADY_TOTAL / 1e6,
        "steady_achieved_mb_per_sec": sum(tallies[i][0].rate() for i in steady) / 1e6,
        "steady_fairness": jain(steady_rates),
        "steady_p50_ms": 1000 * statistics.median(steady_latencies) if steady_latencies else None,
        "steady_p99_ms": 1000 * steady_latencies[int(0.99 * (len(steady_latencies) - 1))] if steady_latencies
        else None,
        "errors": dict(sum((t[0].errors + t[1].errors for t in tallies.values()), Counter[str]())),
    }


async def _idle(conn: Connection, until: float) -> None:
    while time.monotonic() < until:
        await conn.call(metadata_request(), METADATA_VERSION)
        await asyncio.sleep(min(10.0, max(until - time.monotonic(), 0)))


def _proxied(bench: Bench, proxy: Proxy, count: int, seconds: float) -> dict[str, Any]:
    bar = bench.progress(count, f"{count} tenants, proxy")
    cpu_before, _ = proxy.usage()
    started = time.monotonic()
    result = asyncio.run(_drive(proxy.bootstrap, count, seconds, True, bar))
    cpu_after, rss = proxy.usage()
    bar.close()
    result["proxy_cpu_pct"] = 100 * (cpu_after - cpu_before) / (time.monotonic() - started)
    result["proxy_rss_mb"] = rss / 1e6
    return result


def run(bench: Bench) -> dict[str, Any]:
    counts = (10, 100) if bench.quick else (10, 100, 1000)
    seconds = 10 if bench.quick else 40
    points = []
    for count in counts:
        bar = bench.progress(count, f"{count} tenants, direct")
        direct = asyncio.run(_drive(bench.broker.bootstrap, count, seconds, False, bar))
        bar.close()
        config = tenants_config(count)
        config["tenants"][0]["quotas"] = {"produce_bytes_per_sec": NOISY_QUOTA}
        with bench.proxy(tenants=config) as proxy:
            proxied = _proxied(bench, proxy, count, seconds)
        points.append({"tenants": count, "direct": direct, "proxy": proxied})
    return {"noisy_quota_mb_per_sec": NOISY_QUOTA / 1e6, "points": points}
