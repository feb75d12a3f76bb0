"""Connection scale: 1,000, 5,000 and 10,000 mostly idle connections, each logged in (SCRAM-SHA-256) as
a user of one of ten tenants. Reports the proxy's memory per connection and the login rate."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.harness import BENCH_PASSWORD, Bench, Proxy, tenants_config
from benchmarks.rawkafka import Connection

TENANTS = 10
CONCURRENCY = 64  # logins in progress at once, as a fleet of clients restarting would


async def _open(address: str, count: int, bar: Any) -> tuple[list[Connection], float, int]:
    semaphore = asyncio.Semaphore(CONCURRENCY)
    failures = 0

    async def one(i: int) -> Connection | None:
        nonlocal failures
        async with semaphore:
            try:
                conn = await Connection.open(address, f"t{i % TENANTS:04d}-u0", BENCH_PASSWORD, client_id=f"idle-{i}")
            except Exception:  # a refused or failed login: counted, the run goes on
                failures += 1
                return None
            bar.update()
            return conn
    started = time.monotonic()
    opened = await asyncio.gather(*(one(i) for i in range(count)))
    return [c for c in opened if c is not None], time.monotonic() - started, failures


async def _measure(proxy: Proxy, count: int, rss_before: int, bar: Any) -> dict[str, Any]:
    conns, seconds, failures = await _open(proxy.bootstrap, count, bar)
    await asyncio.sleep(3)  # idle: let the proxy settle
    cpu, rss = proxy.usage()
    for conn in conns:
        conn.close()
    return {"connections": count, "opened": len(conns), "failed": failures,
            "open_seconds": seconds, "logins_per_sec": len(conns) / seconds,
            "proxy_rss_mb_before": rss_before / 1e6, "proxy_rss_mb": rss / 1e6,
            "kb_per_connection": (rss - rss_before) / max(len(conns), 1) / 1e3,
            "proxy_cpu_seconds": cpu}


def run(bench: Bench) -> dict[str, Any]:
    counts = (1000,) if bench.quick else (1000, 5000, 10000)
    points = []
    for count in counts:
        with bench.proxy(tenants=tenants_config(TENANTS)) as proxy:
            time.sleep(1)
            _, rss_before = proxy.usage()
            bar = bench.progress(count, f"connections {count}")
            points.append(asyncio.run(_measure(proxy, count, rss_before, bar)))
            bar.close()
    return {"tenants": TENANTS, "points": points}
