"""Where the proxy spends its CPU under the ceiling load, as users run it: py-spy on a tenant-mode proxy.

    python -m benchmarks.profile [--transparent | --encrypted] [--native] [--records N] [--top N]

Starts the local broker and one proxy, warms it up, then samples the proxy with py-spy while Kafka's
ProducerPerformance and ConsumerPerformance run through it (1 KiB records, acks=all, as the ceiling
scenario does). Prints, for each direction, the proxy's CPU seconds per GB and the functions with the
most self time (and, with --native, uvloop's and the kernel interface's C frames too). The raw stacks
stay in the work folder, for a flame graph: ``py-spy``'s raw format is the collapsed-stack format.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import kafka_tools
from benchmarks.harness import BENCH_PASSWORD, NON_BINDING_QUOTAS, Bench, tenants_config
from tenantry.localkafka import DEFAULT_VERSION, KafkaBroker

PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def self_time(raw: Path) -> tuple[Counter[str], int]:
    """Samples per innermost frame, from py-spy's collapsed stacks ("a;b;c count" lines)."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.rsplit(";", 1)[-1]
        counts[leaf.replace(str(Path.cwd()) + "/", "")] += int(n)
        total += int(n)
    return counts, total


def sampled(pid: int, out: Path, seconds: int, native: bool) -> subprocess.Popen[bytes]:
    # --gil: only samples where Python runs; a thread preempted inside a syscall would otherwise count there
    args = [PY_SPY, "record", "-p", str(pid), "-d", str(seconds), "-f", "raw", "-o", str(out), "-r", "250", "--gil"]
    if native:
        args.append("--native")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def requests_by_api(metrics_url: str) -> Counter[str]:
    with urllib.request.urlopen(f"{metrics_url}/metrics", timeout=30) as answer:
        text = answer.read().decode()
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "tenantry_requests":
            for sample in family.samples:
                if sample.name == "tenantry_requests_total":
                    counts[sample.labels.get("api", "?")] += int(sample.value)
    return counts


def cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process: Python and uvloop, then the kernel's side of its syscalls."""
    times = psutil.Process(pid).cpu_times()
    return times.user, times.system


def report(what: str, raw: Path | None, user_s: float, system_s: float, mb: float, requests: Counter[str],
           top: int) -> None:
    busiest = ", ".join(f"{n} {api}" for api, n in requests.most_common(3))
    gb = mb / 1000
    print(f"\n== {what}: {(user_s + system_s) / gb:.2f} proxy CPU s per GB = {user_s / gb:.2f} user + "
          f"{system_s / gb:.2f} system ({mb:.0f} MB; requests: {busiest})")
    if raw is None:
        return
    counts, total = self_time(raw)
    print(f"{total} samples (wall time: a thread preempted in a syscall counts there), top self time:")
    for leaf, n in counts.most_common(top):
        print(f"{100 * n / max(total, 1):5.1f}%  {leaf}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transparent", action="store_true", help="profile transparent mode, not tenant mode")
    parser.add_argument("--encrypted", action="store_true", help="tenant mode with record encryption on every topic")
    parser.add_argument("--native", action="store_true", help="include C frames (uvloop, libc)")
    parser.add_argument("--no-spy", dest="spy", action="store_false",
                        help="only the CPU figures (py-spy's sampling itself costs the proxy CPU)")
    parser.add_argument("--records", type=int, default=400_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--kafka-version", default=DEFAULT_VERSION)
    args = parser.parse_args()
    version = args.kafka_version
    work = Path(tempfile.mkdtemp(prefix="tenantry-profile-"))
    broker = KafkaBroker(work / "kafka", version=version)
    broker.start()
    try:
        bench = Bench(broker, version, work, quick=True)
        tenants = None if args.transparent else tenants_config(1, quotas=NON_BINDING_QUOTAS,
                                                                mechanism="SCRAM-SHA-512", auto_create=True)
        login = None if args.transparent else kafka_tools.sasl_config(work / "login.properties", "t0000-u0",
                                                                      BENCH_PASSWORD)
        flags: tuple[str, ...] = ()
        if args.encrypted and tenants is not None:
            tenants["tenants"][0]["encryption"] = {"topics": ["*"]}
            flags = ("--encryption-key-store", str(work / "keys.json"))
        with bench.proxy(*flags, tenants=tenants) as proxy:
            kafka_tools.produce(version, proxy.bootstrap, "warm", 100_000, config=login)
            mb = args.records * 1024 / 1e6
            for what, run in (("produce", lambda: kafka_tools.produce(version, proxy.bootstrap, "profiled",
                                                                      args.records, config=login)),
                              ("consume", lambda: kafka_tools.consume(version, proxy.bootstrap, "profiled",
                                                                      args.records, config=login))):
                raw = work / f"{what}.txt"
                (user, system), requests = cpu(proxy.pid), requests_by_api(proxy.metrics)
                spy = sampled(proxy.pid, raw, 600, args.native) if args.spy else None
                time.sleep(1)  # py-spy attaches
                run()
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes what it has sampled on ^C
                    spy.wait()
                user_after, system_after = cpu(proxy.pid)
                report(what, raw if spy else None, user_after - user, system_after - system, mb,
                       requests_by_api(proxy.metrics) - requests, args.top)
    finally:
        broker.stop()
    print(f"\nraw stacks: {work}")


if __name__ == "__main__":
    main()
