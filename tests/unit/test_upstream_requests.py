"""The proxy's own requests to a broker wait while it re-authenticates: nothing may go between SASL steps."""

from __future__ import annotations

import asyncio

from benchmarks.inprocess import FakeTransport
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.memory import MemoryBudget
from tenantry.proxy.upstream import UpstreamConnection


async def test_an_own_request_during_reauthentication_is_sent_only_after_it():
    upstream = UpstreamConnection(ProxyConfig(upstream=["127.0.0.1:9092"]), MemoryBudget(1 << 20), None)
    transport = FakeTransport()
    upstream.connection_made(transport)  # type: ignore[arg-type]
    upstream.reauthenticating = True
    upstream._logged_in.clear()
    asked = asyncio.get_running_loop().create_task(upstream.request(MetadataRequest(topics=[]), 12))
    await asyncio.sleep(0.01)
    assert transport.written == b"" and not upstream.pending
    upstream.reauthenticating = False
    upstream._logged_in.set()
    await asyncio.sleep(0.01)
    assert transport.written and len(upstream.pending) == 1
    asked.cancel()
