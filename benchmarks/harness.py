"""What every scenario shares: the local broker, proxies started as real processes, and measurement.

A scenario gets a :class:`Bench`. It starts proxies through it (transparent, or with generated
tenants), samples their CPU and memory, and reports progress. Every process it starts is stopped
when the bench closes, and all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from tqdm import tqdm

from benchmarks.processes import serving, usage
from benchmarks.scrape import Histogram, histogram
from tenantry.localkafka import KafkaBroker
from tenantry.localkafka.broker import SERVICE_PASSWORD, SERVICE_USER, free_port
from tenantry.tenants import admin

#: The password of every generated bench user: throwaway, local, printed in the report.
BENCH_PASSWORD = "bench-password"
#: Quotas on every tenant of a tenant-mode throughput run: configured, as users run it, and far above what
#: this machine can move, so they cost their bookkeeping but never bind.
NON_BINDING_QUOTAS = {"produce_bytes_per_sec": 10e9, "fetch_bytes_per_sec": 10e9, "requests_per_sec": 1e6}


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    bootstrap: str
    metrics: str  # http://host:port
    config: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def usage(self) -> tuple[float, int]:
        """(CPU seconds so far, RSS bytes) of the proxy process."""
        return usage(self.pid)

    def histogram(self, name: str, labels: dict[str, str]) -> Histogram:
        return histogram(self.metrics, name, labels)


@dataclass
class Bench:
    broker: KafkaBroker
    kafka_version: str
    workdir: Path
    quick: bool
    peers: bool = False  # also run Kroxylicious where a scenario has a peer column
    acls: bool = False  # tenant mode with ACLs on: the load tools' users are checked (and allowed everything)

    def progress(self, total: int, desc: str) -> tqdm:  # type: ignore[type-arg]
        return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True, file=sys.stderr)

    @contextmanager
    def proxy(self, *flags: str, tenants: dict[str, Any] | None = None) -> Iterator[Proxy]:
        """A proxy process: transparent, or serving `tenants` (a config dict with [[tenants]])."""
        port, metrics = free_port(), free_port()
        base = free_port() - 1
        args = [sys.executable, "-m", "tenantry.proxy.cli", "serve", "--upstream", self.broker.sasl_bootstrap,
                "--upstream-security-protocol", "SASL_PLAINTEXT", "--upstream-sasl-username", SERVICE_USER,
                "--listen", f"127.0.0.1:{port}", "--broker-port-base", str(base), "--log-level", "WARNING",
                "--metrics-listen", f"127.0.0.1:{metrics}", *flags]
        config = None
        if tenants is None:
            args += ["--listener-security-protocol", "PLAINTEXT"]  # transparent, chosen explicitly
        else:
            config = self.workdir / f"tenants-{port}.toml"
            config.write_text(tomli_w.dumps(tenants))
            args += ["--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                     "--sasl-enabled-mechanisms", "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN", "--config-poll-seconds", "0"]
        env = dict(os.environ, TENANTRY_UPSTREAM_SASL_PASSWORD=SERVICE_PASSWORD)
        with serving(args, port, self.workdir / f"proxy-{port}.log", "the proxy", env) as process:
            yield Proxy(process, f"127.0.0.1:{port}", f"http://127.0.0.1:{metrics}", config)


def tenants_config(count: int, users_per_tenant: int = 1, quotas: dict[str, float] | None = None,
                   mechanism: str = "SCRAM-SHA-256", auto_create: bool = False, acls: bool = False) -> dict[str, Any]:
    """`count` tenants t0000.. with users t0000-u0.., all with BENCH_PASSWORD (one credential, reused:
    deriving a SCRAM key per user would take minutes for thousands of them)."""
    data: dict[str, Any] = {}
    admin.add_tenant(data, "t0000")
    admin.add_user(data, "t0000", "t0000-u0", mechanism, BENCH_PASSWORD)
    credentials = data["tenants"][0]["users"][0]["credentials"]
    data["tenants"] = []
    for i in range(count):
        tenant: dict[str, Any] = {"id": f"t{i:04d}", "prefix": f"t{i:04d}.",
                                  "users": [{"name": f"t{i:04d}-u{u}", "credentials": credentials}
                                            for u in range(users_per_tenant)]}
        if quotas:
            tenant["quotas"] = dict(quotas)
        if auto_create:  # Kafka's load tools create their topics by producing to them
            tenant["allow_auto_create_topics"] = True
        if acls:  # every request of its users checked, and allowed: what the checks cost, not what they refuse
            tenant["authorization"] = "acls"
            tenant["acls"] = [{"resource_type": kind, "name": name, "principal": "User:*", "operation": "ALL"}
                              for kind, name in (("TOPIC", "*"), ("GROUP", "*"), ("TRANSACTIONAL_ID", "*"),
                                                 ("CLUSTER", "kafka-cluster"))]
        data["tenants"].append(tenant)
    return data
