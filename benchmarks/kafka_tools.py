"""Kafka's own load tools, ProducerPerformance and ConsumerPerformance, run from the project's jars."""

from __future__ import annotations

import re
import subprocess

from tenantry.localkafka import kafka_classpath

PRODUCE = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                     r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def java_tool(version: str, main: str, *args: str, timeout: float = 900) -> str:
    result = subprocess.run(["java", "-Xmx1G", "-cp", kafka_classpath(version), main, *args],
                            capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{main} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result.stdout


def produce(version: str, bootstrap: str, topic: str, records: int, throughput: float = -1,
            record_size: int = 1024, props: tuple[str, ...] = ()) -> dict[str, float]:
    """ProducerPerformance with acks=all; `throughput` in records/s (-1: as fast as it goes)."""
    out = java_tool(version, "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                    "--num-records", str(records), "--record-size", str(record_size),
                    "--throughput", str(int(throughput)), "--producer-props", "acks=all",
                    f"bootstrap.servers={bootstrap}", "linger.ms=5", "batch.size=65536", *props)
    match = PRODUCE.findall(out)
    if not match:
        raise RuntimeError(f"unexpected ProducerPerformance output:\n{out}")
    sent, rps, mbps, avg, max_ms, p50, p95, p99, p999 = match[-1]
    return {"records": int(sent), "records_per_sec": float(rps), "mb_per_sec": float(mbps),
            "avg_latency_ms": float(avg), "max_latency_ms": float(max_ms), "p50_ms": float(p50),
            "p95_ms": float(p95), "p99_ms": float(p99), "p999_ms": float(p999)}


def consume(version: str, bootstrap: str, topic: str, records: int, props: tuple[str, ...] = ()) -> dict[str, float]:
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
            "--group", f"bench-{topic}", "--timeout", "60000"]
    if props:
        args += ["--command-property", *props]
    out = java_tool(version, "org.apache.kafka.tools.ConsumerPerformance", *args)
    lines = [line for line in out.splitlines() if line and line[0].isdigit()]
    fields = [f.strip() for f in lines[-1].split(",")]
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
    return {"mb": float(fields[2]), "mb_per_sec": float(fields[3]), "records": int(fields[4]),
            "records_per_sec": float(fields[5])}
