"""The only way a pipeline stage acts on the world: :class:`StageContext`, and the connection's version of it.

Stages see a connection's tenant, meters and login state, and can ask the broker things, through this
interface; they never see the server or a transport. Tests give them a fake.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tenantry.protocol.messages.api_versions_response import ApiVersionsResponse
from tenantry.protocol.schema import Message, Versions
from tenantry.proxy.client_auth import ClientAuth
from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.guard import Guard
from tenantry.proxy.logs import ConnectionLog
from tenantry.proxy.metrics import api_name
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.rewrite.policy import tenant_table
from tenantry.proxy.rewrite.rewriter import Addresses, Rewriter
from tenantry.proxy.stages.login import SASL_VERSIONS
from tenantry.proxy.stats import TenantStats
from tenantry.proxy.throttler import Throttler
from tenantry.proxy.traffic import TrafficMeter
from tenantry.proxy.upstream import UpstreamConnection
from tenantry.tenants.quotas import PRODUCE, Meters
from tenantry.tenants.registry import Registry, Tenant

if TYPE_CHECKING:
    from tenantry.proxy.connection import ClientConnection
    from tenantry.proxy.server import ProxyServer

T = TypeVar("T")


class BrokerLink(Protocol):
    """What a stage may do with the proxy's broker connection: ask it things of the proxy's own."""

    table: dict[int, Versions]

    async def request(self, request: Message, version: int) -> Any: ...


class StageContext(Protocol):
    config: ProxyConfig
    meter: TrafficMeter
    log: ConnectionLog
    peer: str
    auth: ClientAuth | None
    throttler: Throttler | None
    rewriter: Rewriter
    guard: Guard
    quotas: QuotaBook

    @property
    def closed(self) -> bool: ...

    def clock(self) -> float:
        """Event-loop time, in seconds: what throttle deadlines are measured in."""

    def api_name(self, api_key: int) -> str: ...

    def version_table(self) -> dict[int, Versions]:
        """The APIs and versions this client may use."""

    def broker_versions(self) -> ApiVersionsResponse | None: ...

    def saw_client_id(self, client_id: str | None) -> None: ...

    def registry(self) -> Registry: ...

    def tenant(self) -> Tenant | None:
        """The logged-in tenant as configured now (limits change on reload without a new login)."""

    def produce_rate(self) -> float | None: ...

    def broker_ready(self) -> Coroutine[Any, Any, Any] | None:
        """None if the broker connection can take a request now, else a coroutine that waits until it can
        (and returns a Close outcome if it cannot be had)."""

    def broker(self) -> BrokerLink: ...

    async def look_up_topic_ids(self, ids: set[uuid.UUID]) -> None: ...

    def addresses(self) -> Addresses: ...

    def learn_brokers(self, seen: list[tuple[int, str, int]]) -> Awaitable[object] | None: ...

    async def in_thread(self, fn: Callable[[bytes], T], arg: bytes) -> T: ...

    async def sleep(self, seconds: float) -> None: ...

    def start_quotas(self, meters: Meters, user: str, stats: TenantStats) -> None: ...

    def logged_in(self) -> None: ...


class ConnectionContext:
    """A client connection's :class:`StageContext`, backed by the proxy server's shared state."""

    def __init__(self, server: ProxyServer, conn: ClientConnection) -> None:
        self._server = server
        self._conn = conn
        self.config = server.config
        self.meter = conn.meter
        self.log = conn.log
        self.peer = "?"
        self.guard = server.guard
        self.quotas = server.quotas
        self.auth: ClientAuth | None = None
        self.throttler: Throttler | None = None
        self.rewriter = Rewriter(None, server.topic_ids)
        self._table_source: dict[int, Versions] | None = None
        self._tenant_table: dict[int, Versions] = {}
        if self.config.tenants_enabled:
            self.auth = ClientAuth(server.login_registry, self.config.sasl_enabled_mechanisms,
                                   self.config.sasl_session_lifetime_ms, server.secret)

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def clock(self) -> float:
        return asyncio.get_running_loop().time()

    def api_name(self, api_key: int) -> str:
        return api_name(api_key)

    def version_table(self) -> dict[int, Versions]:
        """Built once per version table it derives from, not per request."""
        upstream = self._conn.upstream
        if upstream is not None and self.auth is None:
            return upstream.table
        source = self._server.api_table if upstream is None else upstream.table
        if self._table_source is not source:
            self._table_source, self._tenant_table = source, tenant_table(source) | SASL_VERSIONS
        return self._tenant_table

    def broker_versions(self) -> ApiVersionsResponse | None:
        upstream = self._conn.upstream
        return upstream.broker_versions if upstream is not None else self._server.broker_versions

    def saw_client_id(self, client_id: str | None) -> None:
        self._conn.saw_client_id(client_id)

    def registry(self) -> Registry:
        return self._server.registry

    def tenant(self) -> Tenant | None:
        if self.auth is None or self.auth.principal is None:
            return None
        logged_in_as = self.auth.principal.tenant
        return self._server.registry.tenants.get(logged_in_as.id, logged_in_as)

    def produce_rate(self) -> float | None:
        return self.throttler.meters.effective_rate(PRODUCE) if self.throttler is not None else None

    def broker_ready(self) -> Coroutine[Any, Any, Any] | None:
        return self._conn.broker_ready()

    def broker(self) -> UpstreamConnection:
        assert self._conn.upstream is not None
        return self._conn.upstream

    async def look_up_topic_ids(self, ids: set[uuid.UUID]) -> None:
        await self._server.look_up_topic_ids(self.broker(), ids)

    def addresses(self) -> Addresses:
        return Addresses(self.config.advertised_host, self.config.broker_port)

    def learn_brokers(self, seen: list[tuple[int, str, int]]) -> Awaitable[object] | None:
        return self._server.learn_brokers(seen)

    async def in_thread(self, fn: Callable[[bytes], T], arg: bytes) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, arg)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def start_quotas(self, meters: Meters, user: str, stats: TenantStats) -> None:
        self.throttler = Throttler(meters, user, self._conn.gate, self.quotas.max_delay, stats)

    def logged_in(self) -> None:
        assert self.auth is not None and self.auth.principal is not None
        tenant = self.auth.principal.tenant
        self.rewriter = Rewriter(tenant.namespace, self._server.topic_ids, tenant.id, tenant.allow_auto_create_topics)
        self._conn.logged_in(tenant, self.auth.principal.name, self.auth.principal.mechanism)


