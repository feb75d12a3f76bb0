"""A fake :class:`~tenantry.proxy.stage_context.StageContext` and request builders, for stage tests.

The fake has a clock the test moves, a broker that answers the proxy's own requests from a table the
test fills, and records what the stages asked of it. Quota arithmetic, SASL and rewriting are real.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from benchmarks.inprocess import acme
from tenantry.protocol import encode
from tenantry.protocol.headers import encode_request_header
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.schema import Message, Versions
from tenantry.proxy.api_versions import PROXY_VERSIONS
from tenantry.proxy.authorization.check import DenialLog
from tenantry.proxy.client_auth import ClientAuth
from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.fetch_sessions import FetchSessionOwners
from tenantry.proxy.guard import Guard
from tenantry.proxy.logs import ConnectionLog
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.rewrite.policy import tenant_table
from tenantry.proxy.rewrite.rewriter import Addresses, Rewriter
from tenantry.proxy.rewrite.topic_ids import TopicIds
from tenantry.proxy.stages.login import SASL_VERSIONS
from tenantry.proxy.stats import Stats, TenantStats
from tenantry.proxy.throttler import Throttler
from tenantry.proxy.traffic import TrafficMeter
from tenantry.tenants.quotas import Meters
from tenantry.tenants.registry import Registry, Tenant

T = TypeVar("T")


class Clock:
    """Event-loop-like time that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeBroker:
    """Answers the proxy's own requests (guard rails, topic-id look-ups) with what the test put in `answers`."""

    def __init__(self) -> None:
        self.table: dict[int, Versions] = dict(PROXY_VERSIONS)
        self.answers: dict[int, Message] = {}
        self.asked: list[Message] = []

    async def request(self, request: Message, version: int) -> Any:
        self.asked.append(request)
        assert request.API_KEY is not None
        return self.answers.get(request.API_KEY) or RESPONSES[request.API_KEY]()


registry = acme


class FakeContext:
    """A connection's view of the proxy, without a server, a socket or a broker."""

    def __init__(self, tenants: Registry | None = None, config: ProxyConfig | None = None) -> None:
        self.config = config or ProxyConfig(upstream=["127.0.0.1:9092"])
        self.stats = Stats()
        self.meter = TrafficMeter(self.stats)
        self.log = ConnectionLog(logging.getLogger("tenantry.test"), {})
        self.peer = "127.0.0.1:5555"
        self.clock = Clock()
        self.guard = Guard(self.clock)
        self.quotas = QuotaBook(self.config, self.clock)
        self.fetch_sessions = FetchSessionOwners()
        self.denials = DenialLog()
        self.envelopes = None  # no record encryption unless a test gives it a key store
        self.acl_view = None
        self.closed = False
        self.topic_ids = TopicIds()
        self.rewriter = Rewriter(None, self.topic_ids)
        self._registry = tenants or Registry()
        self.auth: ClientAuth | None = None
        if tenants is not None:
            self.auth = ClientAuth(lambda: self._registry, ["PLAIN"], 0, b"s" * 32, self.clock)
        self.throttler: Throttler | None = None
        self.broker_link = FakeBroker()
        self.broker_waits: list[str] = []  # "connect" or "re-authenticate", one per wait a stage asked for
        self.broker_state = "open"
        self.slept: list[float] = []
        self.looked_up: list[set[uuid.UUID]] = []
        self.learned: list[tuple[int, str, int]] = []
        self.logins = 0
        self.client_ids: list[str | None] = []

    def api_name(self, api_key: int) -> str:
        return str(api_key)

    def version_table(self) -> dict[int, Versions]:
        return tenant_table(PROXY_VERSIONS) | SASL_VERSIONS if self.auth is not None else PROXY_VERSIONS

    def broker_versions(self) -> None:
        return None

    def saw_client_id(self, client_id: str | None) -> None:
        self.client_ids.append(client_id)

    def registry(self) -> Registry:
        return self._registry

    def tenant(self) -> Tenant | None:
        return self.auth.principal.tenant if self.auth and self.auth.principal else None

    def produce_rate(self) -> float | None:
        return None

    def broker_ready(self) -> Any:
        if self.broker_state == "open":
            return None
        self.broker_waits.append(self.broker_state)

        async def wait() -> None:
            self.broker_state = "open"
        return wait()

    def broker(self) -> FakeBroker:
        return self.broker_link

    async def look_up_topic_ids(self, ids: set[uuid.UUID]) -> None:
        self.looked_up.append(ids)

    def addresses(self) -> Addresses:
        return Addresses("proxy.example", lambda node: 19100 + node)

    def learn_brokers(self, seen: list[tuple[int, str, int]]) -> None:
        self.learned.extend(seen)

    async def in_thread(self, fn: Callable[[bytes], T], arg: bytes) -> T:
        return fn(arg)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.now += seconds

    def start_quotas(self, meters: Meters, user: str, stats: TenantStats) -> None:
        self.throttler = Throttler(meters, user, _Gate(), self.quotas.max_delay, stats)  # type: ignore[arg-type]

    async def change_acls(self, tenant_id: str, change: Callable[[Any], tuple[Any, T]]) -> tuple[T, int, int]:
        """As the server does, but kept in the registry alone (no config file)."""
        tenant = self._registry.tenants[tenant_id]
        before = len(tenant.acls.bindings)
        tenant.acls, result = change(tenant.acls)
        return result, before, len(tenant.acls.bindings)

    def logged_in(self) -> None:
        self.logins += 1
        assert self.auth is not None and self.auth.principal is not None
        tenant = self.auth.principal.tenant
        self.rewriter = Rewriter(tenant.namespace, self.topic_ids, tenant.id, tenant.allow_auto_create_topics)


class _Gate:
    """Records mutes instead of pausing a transport."""

    def __init__(self) -> None:
        self.blocked: set[str] = set()

    def block(self, reason: str) -> None:
        self.blocked.add(reason)

    def unblock(self, reason: str) -> None:
        self.blocked.discard(reason)


def exchange(message: Message, version: int, corr: int = 7, client_id: str | None = "app") -> Exchange:
    """An exchange for `message` as a client would frame it (without the size prefix)."""
    assert message.API_KEY is not None
    frame = memoryview(encode_request_header(message.API_KEY, version, corr, client_id) + encode(message, version))
    return Exchange(frame, message.API_KEY, version, corr)


async def outcome_of(result: Any) -> Any:
    """A stage's outcome, with any suspension run to its end (as the connection would)."""
    from tenantry.proxy.outcomes import Suspend

    while isinstance(result, Suspend):
        result = await result.until
    return result


def run(coro: Any) -> Any:
    return asyncio.run(coro) if asyncio.iscoroutine(coro) else coro
