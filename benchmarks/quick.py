"""make bench-quick: Kafka's ProducerPerformance and ConsumerPerformance, direct and through the proxy.

Both run in the same process tree on the same machine, one after the other, against the project's own
local broker: 1 KiB records, acks=all, no throttle. Prints MB/s for each and the proxy/direct ratios,
and writes results/<timestamp>/bench-quick.json. With --profile, the proxy runs under cProfile and the
top entries by own time are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil

from tenantry.localkafka import DEFAULT_VERSION, KafkaBroker, kafka_classpath
from tenantry.localkafka.broker import SERVICE_PASSWORD, SERVICE_USER, api_versions_answers, free_port

PRODUCE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                     r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th")


def java_tool(version: str, main: str, *args: str) -> str:
    result = subprocess.run(["java", "-Xmx1G", "-cp", kafka_classpath(version), main, *args],
                            capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{main} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result.stdout


def produce(version: str, bootstrap: str, topic: str, records: int) -> dict[str, float]:
    out = java_tool(version, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                    "--num-records", str(records), "--record-size", "1024", "--throughput", "-1",
                    "--producer-props", "acks=all", f"bootstrap.servers={bootstrap}", "linger.ms=5",
                    "batch.size=65536")
    match = PRODUCE.findall(out)
    if not match:
        raise RuntimeError(f"unexpected ProducerPerformance output:\n{out}")
    sent, rps, mbps, avg, max_ms, p50, p95, p99 = match[-1]
    return {"records": int(sent), "records_per_sec": float(rps), "mb_per_sec": float(mbps),
            "avg_latency_ms": float(avg), "max_latency_ms": float(max_ms), "p50_ms": float(p50),
            "p95_ms": float(p95), "p99_ms": float(p99)}


def consume(version: str, bootstrap: str, topic: str, records: int) -> dict[str, float]:
    out = java_tool(version, "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap,
                    "--topic", topic, "--messages", str(records), "--group", f"bench-{topic}",
                    "--timeout", "60000")
    lines = [line for line in out.splitlines() if line and line[0].isdigit()]
    fields = [f.strip() for f in lines[-1].split(",")]
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
    return {"mb": float(fields[2]), "mb_per_sec": float(fields[3]), "records": int(fields[4]),
            "records_per_sec": float(fields[5])}


def start_proxy(broker: KafkaBroker, profile_to: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = free_port() - 1
    runner = [sys.executable] + (["-m", "cProfile", "-o", str(profile_to)] if profile_to else [])
    process = subprocess.Popen(
        [*runner, "-m", "tenantry.proxy.cli", "serve", "--upstream", broker.sasl_bootstrap,
         "--upstream-security-protocol", "SASL_PLAINTEXT", "--upstream-sasl-username", SERVICE_USER,
         "--listen", f"127.0.0.1:{port}", "--broker-port-base", str(base), "--log-level", "WARNING"],
        env=dict(os.environ, TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD))
    deadline = time.monotonic() + 30
    while not api_versions_answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the proxy did not start")
        time.sleep(0.1)
    return process, f"127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--profile", action="store_true", help="run the proxy under cProfile")
    parser.add_argument("--kafka-version", default=DEFAULT_VERSION)
    args = parser.parse_args()
    out_dir = Path("results") / datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    profile_path = out_dir / "proxy.prof" if args.profile else None
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as tmp, \
            KafkaBroker(Path(tmp) / "kafka", version=args.kafka_version,
                        extra_properties={"num.partitions": "3"}) as broker:
        proxy, proxy_bootstrap = start_proxy(broker, profile_path)
        try:
            # Full-size warm-up through both paths: the broker's JIT, page cache and log segments, and the
            # proxy, are still speeding up for the first runs (a quarter-size warm-up left a 30% drift).
            produce(args.kafka_version, broker.bootstrap, "warmup-direct", args.records)
            produce(args.kafka_version, proxy_bootstrap, "warmup-proxy", args.records)
            # ABBA order (direct, proxy, proxy, direct) so a broker warming up or a log growing favours
            # neither side; each side's figure is the mean of its two runs.
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in
                                                        ("produce_direct", "produce_proxy",
                                                         "consume_direct", "consume_proxy")}
            order = [("direct", broker.bootstrap, "d1"), ("proxy", proxy_bootstrap, "p1"),
                     ("proxy", proxy_bootstrap, "p2"), ("direct", broker.bootstrap, "d2")]
            meter = psutil.Process(proxy.pid)
            for kind, tool in (("produce", produce), ("consume", consume)):
                for side, bootstrap, topic in order:
                    cpu_before, wall_before = sum(meter.cpu_times()[:2]), time.monotonic()
                    result = tool(args.kafka_version, bootstrap, topic, args.records)
                    # The proxy's share of one core during this run (idle during direct runs).
                    result["proxy_cpu_pct"] = 100 * (sum(meter.cpu_times()[:2]) - cpu_before) / (
                        time.monotonic() - wall_before)
                    runs[f"{kind}_{side}"].append(result)
            results: dict[str, object] = {"runs": runs}
            for key, measured in runs.items():
                results[key] = {field: sum(r[field] for r in measured) / len(measured) for field in measured[0]}
        finally:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(60)
    for kind in ("produce", "consume"):
        direct, proxied = results[f"{kind}_direct"], results[f"{kind}_proxy"]
        assert isinstance(direct, dict) and isinstance(proxied, dict)
        results[f"ratio_{kind}"] = proxied["mb_per_sec"] / direct["mb_per_sec"]
    (out_dir / "bench-quick.json").write_text(json.dumps(results, indent=2))
    print(f"\n{args.records} records of 1 KiB per run, acks=all, Kafka {args.kafka_version}, ABBA order\n")
    print(f"{'':10}{'direct MB/s':>14}{'proxy MB/s':>14}{'ratio':>8}{'p99 direct':>12}{'p99 proxy':>12}")
    for kind in ("produce", "consume"):
        direct, proxied = results[f"{kind}_direct"], results[f"{kind}_proxy"]
        assert isinstance(direct, dict) and isinstance(proxied, dict)
        p99 = (f"{direct['p99_ms']:>10.0f}ms{proxied['p99_ms']:>10.0f}ms" if "p99_ms" in direct else "")
        print(f"{kind:10}{direct['mb_per_sec']:>14.1f}{proxied['mb_per_sec']:>14.1f}"
              f"{results[f'ratio_{kind}']:>8.2f}{p99}")
    for key, measured in runs.items():
        print(f"  {key:16} runs: " + ", ".join(f"{r['mb_per_sec']:.1f}" for r in measured) + " MB/s; proxy CPU "
              + ", ".join(f"{r['proxy_cpu_pct']:.0f}%" for r in measured))
    print(f"\nresults in {out_dir}")
    if profile_path is not None and profile_path.exists():
        print("\nproxy profile, top 15 by own time:")
        pstats.Stats(str(profile_path)).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
