"""The coordinator's I/O half when the cluster cannot be reached: it must fall back, say so, and keep trying.
(Reaching it is the integration tests' part, on a real broker.)"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.fleet import FleetCoordinator
from tenantry.proxy.quota_book import QuotaBook
from tenantry.tenants.fleet_shares import Report, Usage
from tenantry.tenants.quotas import PRODUCE

from .test_fleet_view import MB, tenants


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once it is closed


@pytest.mark.asyncio
async def test_an_unreachable_coordination_topic_falls_back_to_the_limit_over_the_last_fleet_size(caplog):
    config = ProxyConfig(upstream=[f"127.0.0.1:{closed_port()}"], quota_coordination="kafka",
                         quota_tune_interval_ms=100)
    book = QuotaBook(config)
    coordinator = FleetCoordinator(config, book, replica="me")
    meters = book.for_tenant(tenants(produce_bytes_per_sec=3 * MB).tenants["acme"])
    for replica in ("me", "other-1", "other-2"):  # the fleet as last seen: three replicas
        coordinator.shares.receive(Report(replica, {("acme", PRODUCE): Usage(0.0, False, 0)}))
    assert coordinator.shares.coordinated
    caplog.set_level(logging.INFO, "tenantry.fleet")
    task = asyncio.create_task(coordinator.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            if not coordinator.shares.coordinated and "unavailable" in caplog.text:
                break
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not coordinator.shares.coordinated
    assert coordinator.traffic.failures >= 1 and coordinator.traffic.published == 0
    assert meters.effective_rate(PRODUCE) == pytest.approx(MB)  # 3 MB/s over the 3 replicas last seen
    assert "quota coordination unavailable" in caplog.text and "/ 3" in caplog.text
    metrics = {m.name: m for m in coordinator.metrics()}
    assert metrics["tenantry_fleet_coordinated"].samples[0].value == 0


def test_status_shows_each_limit_against_the_fleets_use_with_every_replicas_slice():
    from tenantry.proxy.status import render

    config = ProxyConfig(upstream=["127.0.0.1:9"], quota_coordination="kafka")
    book = QuotaBook(config)
    coordinator = FleetCoordinator(config, book, replica="host-a:1")
    book.for_tenant(tenants(produce_bytes_per_sec=3 * MB).tenants["acme"])
    settled = time.time() - 2.5  # reports of rounds every replica has had time to read
    coordinator.shares.receive(Report("host-a:1", {("acme", PRODUCE): Usage(1.9 * MB, True, 2)}), sent_at=settled)
    coordinator.shares.receive(Report("host-b:2", {("acme", PRODUCE): Usage(0.9 * MB, True, 1)}), sent_at=settled)
    fleet = coordinator.status()
    produce = next(item for item in fleet["limits"] if item["limit"] == PRODUCE)
    assert sum(produce["slices"].values()) == pytest.approx(3 * MB)
    assert produce["slices"]["host-a:1"] == pytest.approx(2 * MB)
    text = render({"ready": True, "connections": 0, "uptime_seconds": 1.0, "event_loop_lag_seconds": 0.0,
                   "tenants": [], "brokers": [], "fleet": fleet})
    assert "fleet: 2 replicas, coordinated; this one is host-a:1" in text
    row = next(line for line in text.splitlines() if line.startswith("acme") and " produce " in line)
    assert "2.8 MB/s / 3.0 MB/s" in row and "host-a:1 (this) 2.0 MB/s" in row and "host-b:2 1.0 MB/s" in row
    assert any(line.startswith("acme") and "produce/alice" in line for line in text.splitlines())
