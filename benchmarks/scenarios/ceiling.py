"""Ceiling: Kafka's ProducerPerformance and ConsumerPerformance, 1 KiB records, acks=all, unthrottled,
straight to the broker, through the proxy in tenant mode (as users run it: SCRAM-SHA-512 logins, the
prefix rewrite, quotas configured far above what the machine moves) and through a transparent proxy.

A fourth side is tenant mode with record encryption on for every topic of the tenant (another tenant of
the same proxy). Runs go in a mirrored order (direct, tenant, encrypted, transparent, transparent,
encrypted, tenant, direct) so a broker still warming up favours no side. The full run repeats the
round: one run on this shared machine can read 115 MB/s and the next 174, so each side's figure is the
median of its runs. Every proxied run reports
the proxy's CPU seconds per GB moved: on two cores shared with the broker and the load tools, every CPU
second the proxy spends is taken from them, and it is the figure that survives the machine's noise."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import kafka_tools
from benchmarks.harness import BENCH_PASSWORD, NON_BINDING_QUOTAS, Bench, tenants_config
from benchmarks.peers.kroxylicious import kroxylicious
from benchmarks.processes import Measured

#: "proxy" is tenant mode, the product as users run it; "encrypted" is tenant mode with record encryption on
#: for every topic of the tenant (another tenant of the same proxy process).
SIDES = ("direct", "proxy", "encrypted", "transparent")
RECORD = 1024
Route = tuple[str, Path | None, Measured | None]  # bootstrap, client config file, the process in between


def run(bench: Bench) -> dict[str, Any]:
    records, rounds = (200_000, 1) if bench.quick else (500_000, 2)
    runs: dict[str, list[dict[str, float]]] = {f"{kind}_{side}": [] for kind in ("produce", "consume")
                                               for side in SIDES}
    tenants = tenants_config(2, quotas=NON_BINDING_QUOTAS, mechanism="SCRAM-SHA-512", auto_create=True,
                             acls=bench.acls)
    tenants["tenants"][1]["encryption"] = {"topics": ["*"]}
    keys = ("--encryption-key-store", str(bench.workdir / "ceiling-keys.json"))
    with bench.proxy(*keys, tenants=tenants) as tenant_proxy, bench.proxy() as transparent:
        def login(user: str) -> Path:
            return kafka_tools.sasl_config(bench.workdir / f"ceiling-{user}.properties", user, BENCH_PASSWORD)
        paths: dict[str, Route] = {
            "direct": (bench.broker.bootstrap, None, None),
            "proxy": (tenant_proxy.bootstrap, login("t0000-u0"), tenant_proxy),
            "encrypted": (tenant_proxy.bootstrap, login("t0001-u0"), tenant_proxy),
            "transparent": (transparent.bootstrap, None, transparent),
        }
        bar = bench.progress(len(paths) + 16 * rounds, "ceiling")
        # Full-size warm-up through every path: the broker's JIT, page cache and log segments.
        for side, (bootstrap, login, _) in paths.items():
            kafka_tools.produce(bench.kafka_version, bootstrap, f"ceiling-warmup-{side}", records, config=login)
            bar.update()
        mirrored = ("direct", "proxy", "encrypted", "transparent", "transparent", "encrypted", "proxy", "direct")
        order = [(side, f"ceiling-{side}-{round_}-{i}") for round_ in range(rounds) for i, side in enumerate(mirrored)]
        for kind in ("produce", "consume"):
            for side, topic in order:
                runs[f"{kind}_{side}"].append(_one(bench, kind, paths[side], topic, records))
                bar.update()
        bar.close()
    if bench.peers:
        runs.update(_peer(bench, records))
    return summarise(records, runs)


def _one(bench: Bench, kind: str, path: Route, topic: str, records: int) -> dict[str, float]:
    bootstrap, login, proxy = path
    cpu_before = proxy.usage()[0] if proxy is not None else 0.0
    started = time.monotonic()
    if kind == "produce":
        result = kafka_tools.produce(bench.kafka_version, bootstrap, topic, records, config=login)
    else:
        result = kafka_tools.consume(bench.kafka_version, bootstrap, topic, records, config=login)
    elapsed = time.monotonic() - started
    if proxy is not None:
        cpu_after, rss = proxy.usage()
        result["proxy_cpu_pct"] = 100 * (cpu_after - cpu_before) / elapsed
        result["proxy_cpu_s_per_gb"] = (cpu_after - cpu_before) / (records * RECORD / 1e9)
        result["proxy_rss_mb"] = rss / 1e6
    return result


def summarise(records: int, runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Each side's medians, and each proxied side's throughput as a ratio to direct in the same run."""
    summary: dict[str, Any] = {"records": records, "record_size": RECORD, "runs": runs}
    for key, measured in runs.items():
        if measured:
            summary[key] = {f: statistics.median(r[f] for r in measured) for f in measured[0]}
    for kind in ("produce", "consume"):
        direct = summary[f"{kind}_direct"]["mb_per_sec"]
        summary[f"ratio_{kind}"] = summary[f"{kind}_proxy"]["mb_per_sec"] / direct
        for other in ("encrypted", "transparent", "kroxylicious", "kroxylicious_mt", "kroxylicious_enc"):
            if f"{kind}_{other}" in summary:
                summary[f"ratio_{kind}_{other}"] = summary[f"{kind}_{other}"]["mb_per_sec"] / direct
    return summary


def _peer(bench: Bench, records: int) -> dict[str, list[dict[str, float]]]:
    """Kroxylicious in pass-through, with its multi-tenant filter and with its record-encryption filter (every
    topic encrypted, beside the encrypted side's tenant mode): the same runs, each after a warm-up
    (its JIT needs one more than we do). A peer that fails is left out of the report, not the whole run."""
    runs: dict[str, list[dict[str, float]]] = {}
    for side, filters in (("kroxylicious", ""), ("kroxylicious_mt", "multitenant"),
                          ("kroxylicious_enc", "encryption")):
        try:
            runs.update(_one_peer(bench, records, side, filters))
        except RuntimeError as exc:
            print(f"{side} failed, left out: {str(exc)[:500]}")
    return runs


def _one_peer(bench: Bench, records: int, side: str, filters: str) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {f"produce_{side}": [], f"consume_{side}": []}
    with kroxylicious(bench.broker.bootstrap, bench.workdir, filters) as peer:
        path: Route = (peer.bootstrap, None, peer)
        bar = bench.progress(5, f"ceiling, {side}")
        kafka_tools.produce(bench.kafka_version, peer.bootstrap, f"ceiling-warmup-{side}", records)
        bar.update()
        for kind in ("produce", "consume"):
            for topic in (f"ceiling-{side}-1", f"ceiling-{side}-2"):
                runs[f"{kind}_{side}"].append(_one(bench, kind, path, topic, records))
                bar.update()
        bar.close()
    return runs
