"""The coordinator's I/O half when the cluster cannot be reached: it must fall back, say so, and keep trying.
(Reaching it is the integration tests' part, on a real broker.)"""

from __future__ import annotations

import asyncio
import logging
import socket

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
