"""The fuzzer against a broker and a proxy of its own, with the checks `make fuzz` reports on."""

from __future__ import annotations

import asyncio
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from tenantry.localkafka import DEFAULT_VERSION, KafkaBroker
from tenantry.localkafka.broker import free_port
from tests.fuzz import fuzz
from tests.integration.conftest import TENANT_USERS, RunningProxy, start_proxy, stop_proxy, write_tenants

USER = "bob"


def connections_active(metrics: str) -> float:
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tenantry_connections_active{"))


def settled(proxy: RunningProxy, metrics: str, fds: int, active: float, timeout: float = 60) -> tuple[int, float]:
    """Descriptors and active connections once the closed clients' connections have gone (or at the timeout)."""
    process = psutil.Process(proxy.process.pid)
    deadline = time.monotonic() + timeout
    while True:
        now = (process.num_fds(), connections_active(metrics))
        if (now[0] <= fds and now[1] <= active) or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


def run_against_real_broker(frames: int, seed: int, concurrency: int) -> int:
    with tempfile.TemporaryDirectory() as tmp, KafkaBroker(Path(tmp) / "kafka", version=DEFAULT_VERSION) as broker:
        config = Path(tmp) / "tenantry.toml"
        write_tenants(config)
        metrics = f"127.0.0.1:{free_port()}"
        proxy = start_proxy(broker, Path(tmp), "--config", str(config), "--listener-security-protocol",
                            "SASL_PLAINTEXT", "--metrics-listen", metrics, "--log-level", "INFO")
        try:
            process = psutil.Process(proxy.process.pid)
            time.sleep(1)
            fds, active, rss = process.num_fds(), connections_active(metrics), process.memory_info().rss
            started = time.monotonic()
            tally = asyncio.run(fuzz(proxy.bootstrap, frames, seed, (USER, TENANT_USERS[USER][2]), concurrency))
            took = time.monotonic() - started
            alive = proxy.process.poll() is None
            fds_after, active_after = settled(proxy, metrics, fds, active) if alive else (-1, -1.0)
            rss_after = process.memory_info().rss if alive else 0
        finally:
            code = stop_proxy(proxy)
        log = proxy.log_text()
        problems = {
            "proxy crashed": not alive,
            "proxy exited non-zero at SIGTERM": code != 0,
            "traceback in the proxy log": "Traceback" in log,
            "unretrieved task exception": "never retrieved" in log,
            "descriptors not back to baseline": fds_after > fds,
            "tenantry_connections_active not back to baseline": active_after > active,
        }
    print(f"fuzz: {tally.frames} mutated frames on {tally.connections} connections ({tally.logged_in} logged in) "
          f"in {took:.0f} s, seed {seed}")
    print(f"  responses: {tally.answered}; connections closed by the proxy: {tally.closed_by_proxy}; "
          f"client-side errors: {len(tally.errors)}")
    print(f"  descriptors {fds} -> {fds_after}, tenantry_connections_active {active:g} -> {active_after:g}, "
          f"RSS {rss / 2**20:.0f} -> {rss_after / 2**20:.0f} MB")
    for problem, found in problems.items():
        print(f"  {'FAIL' if found else 'ok  '} {problem}")
    if "Traceback" in log:
        at = log.index("Traceback")
        print("first traceback:\n" + log[max(0, log.rfind("\n", 0, at - 300)):at + 2500])
    return 1 if any(problems.values()) else 0
