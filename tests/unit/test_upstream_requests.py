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


async def test_a_broker_older_than_our_api_versions_is_asked_again_at_its_newest():
    from tenantry.protocol.envelope import response_frame
    from tenantry.protocol.errors import ErrorCode
    from tenantry.protocol.messages.api_versions_response import ApiVersion, ApiVersionsResponse
    from tenantry.proxy.upstream import OUR_API_VERSIONS

    upstream = UpstreamConnection(ProxyConfig(upstream=["127.0.0.1:9092"]), MemoryBudget(1 << 20), None)
    upstream.connection_made(FakeTransport())  # type: ignore[arg-type]
    handshake = asyncio.get_running_loop().create_task(upstream._handshake())
    await asyncio.sleep(0.01)
    [first] = upstream.pending
    assert first.version == OUR_API_VERSIONS
    old = ApiVersionsResponse(error_code=ErrorCode.UNSUPPORTED_VERSION,
                              api_keys=[ApiVersion(api_key=18, min_version=0, max_version=2)])
    upstream._on_frame(memoryview(response_frame(old, 0, first.upstream_corr)[4:]))  # KIP-511: answered in v0
    await asyncio.sleep(0.01)
    [second] = upstream.pending
    assert second.version == 2
    upstream._on_frame(memoryview(response_frame(ApiVersionsResponse(api_keys=old.api_keys), 2,
                                                 second.upstream_corr)[4:]))
    await handshake
    assert upstream.table[18].hi == 2
