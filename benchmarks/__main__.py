"""`make bench` / `make bench-quick`: the benchmark suite, direct and through the proxy in one run.

    python -m benchmarks [--quick] [--only ceiling,latency,tenants,connections,quotas,fleet] [--kafka-version V]

Writes results/<date>/ with results.json, report.md and PNG plots, and prints the targets table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.harness import Bench
from benchmarks.scenarios import ceiling, connections, fleet, latency, quotas, tenants
from tenantry.localkafka import DEFAULT_VERSION, KafkaBroker

SCENARIOS = ("ceiling", "latency", "tenants", "connections", "quotas", "fleet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs: the whole suite in under 5 minutes")
    parser.add_argument("--only", default=None, help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all; "
                                                     "--quick leaves out fleet, whose processes take minutes)")
    parser.add_argument("--kafka-version", default=DEFAULT_VERSION)
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=None,
                        help="run Kroxylicious as a peer in the ceiling and latency scenarios "
                        "(default: yes, but not with --quick)")
    parser.add_argument("--acls", action="store_true",
                        help="tenant mode with ACLs on (authorization = \"acls\", the users checked and allowed "
                             "everything): what the checks cost")
    args = parser.parse_args(argv)
    chosen = ([s for s in args.only.split(",") if s] if args.only is not None
              else [s for s in SCENARIOS if not (args.quick and s == "fleet")])
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    out = Path("results") / datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"meta": {"started": datetime.now().isoformat(timespec="seconds"),
                                        "kafka_version": args.kafka_version, "quick": args.quick,
                                        "cpus": os.cpu_count(), "scenarios": chosen,
                                        "acls": args.acls}}
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as tmp, \
            KafkaBroker(Path(tmp) / "kafka", version=args.kafka_version,
                        extra_properties={"num.partitions": "3"}) as broker:
        peers = not args.quick if args.peers is None else args.peers
        bench = Bench(broker, args.kafka_version, Path(tmp), args.quick, peers, args.acls)
        if "ceiling" in chosen or "latency" in chosen:
            results["ceiling"] = ceiling.run(bench)
            c = results["ceiling"]
            print(f"ceiling, tenant mode: produce {c['ratio_produce']:.2f}, consume {c['ratio_consume']:.2f} "
                  "of direct; "
                  f"proxy CPU {c['produce_proxy']['proxy_cpu_s_per_gb']:.2f} / "
                  f"{c['consume_proxy']['proxy_cpu_s_per_gb']:.2f} s per GB produced / consumed", file=sys.stderr)
        if "latency" in chosen:
            results["latency"] = latency.run(bench, results["ceiling"]["produce_direct"]["records_per_sec"])
        if "tenants" in chosen:
            results["tenants"] = tenants.run(bench)
        if "connections" in chosen:
            results["connections"] = connections.run(bench)
        if "quotas" in chosen:
            results["quotas"] = quotas.run(bench)
        if "fleet" in chosen:
            results["fleet"] = fleet.run(bench)
    results["meta"]["seconds"] = time.monotonic() - started
    summary = report.write(results, out)
    print(f"\n{summary}\n\nresults, report.md and plots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
