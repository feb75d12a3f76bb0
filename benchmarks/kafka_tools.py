"""Kafka's own load tools, ProducerPerformance and ConsumerPerformance, run from the project's jars."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

from tenantry.localkafka import kafka_classpath

PRODUCE = re.compile(r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
                     r"([\d.]+) ms avg latency, "
                     r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def sasl_config(path: Path, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> Path:
    """A client properties file for logging in to a tenant-mode proxy (the JAAS line has '=' in it, which
    the tools' --command-property cannot carry)."""
    module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mechanism == "PLAIN"
              else "org.apache.kafka.common.security.scram.ScramLoginModule")
    path.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n"
                    f'sasl.jaas.config={module} required username="{user}" password="{password}";\n')
    return path


def java_tool(version: str, main: str, *args: str, timeout: float = 900) -> str:
    result = subprocess.run(["java", "-Xmx1G", "-cp", kafka_classpath(version), main, *args],
                            capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{main} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return result.stdout


def produce(version: str, bootstrap: str, topic: str, records: int, throughput: float = -1,
            record_size: int = 1024, props: tuple[str, ...] = (), warmup_records: int = 0,
            config: Path | None = None) -> dict[str, float]:
    """ProducerPerformance with acks=all; `throughput` in records/s (-1: as fast as it goes).

    The first `warmup_records` (sent on top of `records`) are left out of the figures: a fresh JVM's
    JIT, the producer's metadata fetch and the topic's creation would otherwise be the tail.
    """
    warmup_option = bool(warmup_records) and has_warmup_option(version)
    if warmup_records and not warmup_option:  # older tools: a separate run still creates the topic and warms up
        produce(version, bootstrap, topic, warmup_records, throughput, record_size, props, config=config)
    total = records + warmup_records if warmup_option else records
    args = ["--topic", topic, "--num-records", str(total), "--record-size", str(record_size),
            "--throughput", str(int(throughput)), "--producer-props", "acks=all", f"bootstrap.servers={bootstrap}",
            "linger.ms=5", "batch.size=65536", *props]
    if warmup_option:
        args += ["--warmup-records", str(warmup_records)]
    if config is not None:
        args += ["--producer.config", str(config)]
    out = java_tool(version, "org.apache.kafka.tools.ProducerPerformance", *args)
    match = PRODUCE.findall(out)  # with a warm-up, the steady-state line comes last
    if not match:
        raise RuntimeError(f"unexpected ProducerPerformance output:\n{out}")
    sent, rps, mbps, avg, max_ms, p50, p95, p99, p999 = match[-1]
    return {"records": int(sent), "records_per_sec": float(rps), "mb_per_sec": float(mbps),
            "avg_latency_ms": float(avg), "max_latency_ms": float(max_ms), "p50_ms": float(p50),
            "p95_ms": float(p95), "p99_ms": float(p99), "p999_ms": float(p999)}


@functools.cache
def has_warmup_option(version: str) -> bool:
    """ProducerPerformance gained --warmup-records in Kafka 4.1 (KIP-1052)."""
    result = subprocess.run(["java", "-cp", kafka_classpath(version), "org.apache.kafka.tools.ProducerPerformance",
                             "--help"], capture_output=True, text=True, timeout=60, check=False)
    return "--warmup-records" in result.stdout + result.stderr


def consume(version: str, bootstrap: str, topic: str, records: int, props: tuple[str, ...] = (),
            config: Path | None = None) -> dict[str, float]:
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(records),
            "--group", f"bench-{topic}", "--timeout", "60000"]
    if config is not None:
        args += ["--consumer.config", str(config)]
    if props:
        args += ["--command-property", *props]
    out = java_tool(version, "org.apache.kafka.tools.ConsumerPerformance", *args)
    lines = [line for line in out.splitlines() if line and line[0].isdigit()]
    fields = [f.strip() for f in lines[-1].split(",")]
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
    return {"mb": float(fields[2]), "mb_per_sec": float(fields[3]), "records": int(fields[4]),
            "records_per_sec": float(fields[5])}
