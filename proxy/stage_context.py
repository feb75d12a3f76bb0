"""The only way a pipeline stage acts on the world: :class:`StageContext`.

Stages see a connection's tenant, meters and login state, and can ask the broker things, through this
interface; they never see the server or a transport (import-linter checks it). A connection's is
:class:`~tenantry.proxy.connection_context.ConnectionContext`; tests give stages a fake.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from tenantry.protocol.messages.api_versions_response import ApiVersionsResponse
from tenantry.protocol.schema import Message, Versions
from tenantry.proxy.authorization.check import ConnectionAcls, DenialLog
from tenantry.proxy.client_auth import ClientAuth
from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.fetch_sessions import FetchSessionOwners
from tenantry.proxy.guard import Guard
from tenantry.proxy.logs import ConnectionLog
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.rewrite.rewriter import Addresses, Rewriter
from tenantry.proxy.stats import TenantStats
from tenantry.proxy.throttler import Throttler
from tenantry.proxy.traffic import TrafficMeter
from tenantry.tenants.acls import Acls
from tenantry.tenants.envelope import Envelopes
from tenantry.tenants.quotas import Meters
from tenantry.tenants.registry import Registry, Tenant

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
    fetch_sessions: FetchSessionOwners
    denials: DenialLog
    acl_view: ConnectionAcls | None  # this connection's user as its tenant's ACLs see it (set by authorization)
    envelopes: Envelopes | None  # record encryption's keys, if the proxy has a key store

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

    async def change_acls(self, tenant_id: str, change: Callable[[Acls], tuple[Acls, T]]) -> tuple[T, int, int]:
        """Change a tenant's ACLs where they are kept; (`change`'s result, bindings before, after)."""
