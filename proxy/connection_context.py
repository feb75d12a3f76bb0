"""A client connection's :class:`~tenantry.proxy.stage_context.StageContext`, backed by the server's shared state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from tenantry.protocol.messages.api_versions_response import ApiVersionsResponse
from tenantry.protocol.schema import Versions
from tenantry.proxy.acl_store import change_acls
from tenantry.proxy.authorization.check import ConnectionAcls
from tenantry.proxy.client_auth import ClientAuth
from tenantry.proxy.metrics import api_name
from tenantry.proxy.rewrite.policy import tenant_table
from tenantry.proxy.rewrite.rewriter import Addresses, Rewriter
from tenantry.proxy.stages.login import SASL_VERSIONS
from tenantry.proxy.stats import TenantStats
from tenantry.proxy.throttler import Throttler
from tenantry.proxy.upstream import UpstreamConnection
from tenantry.tenants.acls import Acls
from tenantry.tenants.quotas import PRODUCE, Meters
from tenantry.tenants.registry import Registry, Tenant

if TYPE_CHECKING:
    from tenantry.proxy.connection import ClientConnection
    from tenantry.proxy.server import ProxyServer

T = TypeVar("T")


class ConnectionContext:
    """A client connection's :class:`StageContext`, backed by the proxy server's shared state."""

    def __init__(self, server: ProxyServer, conn: ClientConnection) -> None:
        self._server = server
        self._conn = conn
        self._broker = conn.broker
        self._loop = asyncio.get_running_loop()
        self._log_context = conn.log_context
        self._client_id_seen = False
        # Called twice per request: the session's own method, not a wrapper around it.
        self.broker_ready: Callable[[], Coroutine[Any, Any, Any] | None] = conn.broker.ready
        self.config = server.config
        self.meter = conn.meter
        self.log = conn.log
        self.peer = "?"
        self.guard = server.guard
        self.quotas = server.quotas
        self.fetch_sessions = server.fetch_sessions
        self.denials = server.denials
        self.envelopes = server.envelopes
        self.acl_view: ConnectionAcls | None = None
        self.auth: ClientAuth | None = None
        self.throttler: Throttler | None = None
        self.rewriter = Rewriter(None, server.topic_ids)
        self._table_source: dict[int, Versions] | None = None
        self._tenant_table: dict[int, Versions] = {}
        if self.config.tenants_enabled:
            # An SSL listener's clients log in with their certificate (certificate_login), never with SASL.
            mechanisms = [] if self.config.listener_security_protocol == "SSL" else self.config.sasl_enabled_mechanisms
            self.auth = ClientAuth(server.login_registry, mechanisms,
                                   self.config.sasl_session_lifetime_ms, server.secret, oauth=server.token_checks)

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def clock(self) -> float:
        return self._loop.time()

    def api_name(self, api_key: int) -> str:
        return api_name(api_key)

    def version_table(self) -> dict[int, Versions]:
        """Built once per version table it derives from, not per request."""
        upstream = self._broker.upstream
        if upstream is not None and self.auth is None:
            return upstream.table
        source = self._server.api_table if upstream is None else upstream.table
        if self._table_source is not source:
            self._table_source, self._tenant_table = source, tenant_table(source) | SASL_VERSIONS
        return self._tenant_table

    def broker_versions(self) -> ApiVersionsResponse | None:
        upstream = self._broker.upstream
        return upstream.broker_versions if upstream is not None else self._server.broker_versions

    def saw_client_id(self, client_id: str | None) -> None:
        """The first client id names the connection in its log lines (clients keep one per connection)."""
        if not self._client_id_seen and client_id:
            self._client_id_seen = True
            self._log_context["client_id"] = client_id

    def registry(self) -> Registry:
        return self._server.registry

    def tenant(self) -> Tenant | None:
        if self.auth is None or self.auth.principal is None:
            return None
        logged_in_as = self.auth.principal.tenant
        return self._server.registry.tenants.get(logged_in_as.id, logged_in_as)

    def produce_rate(self) -> float | None:
        return self.throttler.meters.effective_rate(PRODUCE) if self.throttler is not None else None

    def broker(self) -> UpstreamConnection:
        assert self._broker.upstream is not None
        return self._broker.upstream

    async def look_up_topic_ids(self, ids: set[uuid.UUID]) -> None:
        await self._server.look_up_topic_ids(self.broker(), ids)

    def addresses(self) -> Addresses:
        names = self._server.broker_names
        if names is not None:  # SNI routing: every broker on the listen port, under its own name
            return Addresses(self.config.advertised_host, self._server.sni_port, host_for=names.host)
        return Addresses(self.config.advertised_host, self.config.broker_port)

    def learn_brokers(self, seen: list[tuple[int, str, int]]) -> Awaitable[object] | None:
        return self._server.learn_brokers(seen)

    async def in_thread(self, fn: Callable[[bytes], T], arg: bytes) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, arg)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def change_acls(self, tenant_id: str, change: Callable[[Acls], tuple[Acls, T]]) -> tuple[T, int, int]:
        return await change_acls(self._server, tenant_id, change)

    def start_quotas(self, meters: Meters, user: str, stats: TenantStats) -> None:
        self.throttler = Throttler(meters, user, self._conn.gate, self.quotas.max_delay, stats)

    def logged_in(self) -> None:
        assert self.auth is not None and self.auth.principal is not None
        tenant = self.auth.principal.tenant
        self.rewriter = Rewriter(tenant.namespace, self._server.topic_ids, tenant.id, tenant.allow_auto_create_topics)
        self._conn.logged_in(tenant, self.auth.principal.name, self.auth.principal.mechanism)


