"""A client connection run in-process: a fake socket, a fake server and a fake broker, the real pipeline.

Used by the connection tests and the hot-path microbenchmarks (``make microbench``): no network, no
Kafka, so a request's trip through the proxy can be driven and timed on its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from tenantry.protocol import encode
from tenantry.protocol.headers import encode_response_header, response_header_version
from tenantry.protocol.primitives import INT32
from tenantry.protocol.schema import Message
from tenantry.proxy.api_versions import PROXY_VERSIONS
from tenantry.proxy.authorization.check import DenialLog
from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.connection import ClientConnection
from tenantry.proxy.fetch_sessions import FetchSessionOwners
from tenantry.proxy.guard import Guard
from tenantry.proxy.memory import MemoryBudget, TenantBudget
from tenantry.proxy.prelogin import PreLoginLimits
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.rewrite.topic_ids import TopicIds
from tenantry.proxy.stats import Stats
from tenantry.tenants import admin
from tenantry.tenants.registry import Registry


def acme(**settings: Any) -> Registry:
    """Tenant acme (prefix "acme.") with user alice (PLAIN, password "secret"), and these settings."""
    data: dict[str, Any] = {}
    admin.add_tenant(data, "acme")
    admin.add_user(data, "acme", "alice", "PLAIN", "secret")
    data["tenants"][0].update(settings)
    return Registry.from_config(data)


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.paused = False
        self.closing = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555) if name == "peername" else None

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.written += chunk

    def write(self, data: Any) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def correlation_ids(self) -> list[int]:
        ids, pos = [], 0
        while pos < len(self.written):
            size = INT32.unpack_from(self.written, pos)[0]
            ids.append(INT32.unpack_from(self.written, pos + 4)[0])
            pos += 4 + size
        return ids


class FakeUpstream:
    def __init__(self) -> None:
        self.table = dict(PROXY_VERSIONS)
        self.broker_versions = None
        self.owner: Any = None
        self.closed = False
        self.reauthenticating = False
        self.pending: deque[Any] = deque()
        self.forwarded: list[Any] = []
        self.broker = "1"
        self.answers: dict[int, Message] = {}  # what the proxy's own requests get, by API key
        self.answering = asyncio.Event()  # the test says when the proxy's own requests are answered
        self.answering.set()

    def forward(self, parts: list[Any], entry: Any) -> None:
        self.forwarded.append(entry)

    def answer(self, entry: Any, response: Message) -> None:
        """Answer a forwarded request as the broker would."""
        header = encode_response_header(99, response_header_version(entry.api_key, entry.api_version))
        self.owner.on_upstream_response(entry, memoryview(header + encode(response, entry.api_version)))

    async def request(self, request: Message, version: int) -> Any:
        """A request of the proxy's own (guard rails, topic-id look-ups)."""
        from tenantry.protocol.messages import RESPONSES

        await self.answering.wait()
        assert request.API_KEY is not None
        return self.answers.get(request.API_KEY) or RESPONSES[request.API_KEY]()

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class FakeServer:
    def __init__(self, tenants: bool, registry: Registry | None = None, **settings: Any) -> None:
        """A proxy with tenants (SASL) or transparent; `registry` defaults to :func:`acme`."""
        self.config = ProxyConfig(upstream=["127.0.0.1:9092"], auth_failure_delay_ms=0,
                                  listener_security_protocol="SASL_PLAINTEXT" if tenants else "PLAINTEXT", **settings)
        self.memory = MemoryBudget(1 << 20)
        self.prelogin = PreLoginLimits(self.config)
        self.stats = Stats()
        self.connections: set[ClientConnection] = set()
        self.quotas = QuotaBook(self.config)
        self.registry = registry or acme()
        self.secret = b"s" * 32
        self.topic_ids = TopicIds()
        self.guard = Guard()
        self.fetch_sessions = FetchSessionOwners()
        self.denials = DenialLog()
        self.envelopes = None  # no record encryption unless a test gives it a key store
        self.api_table = dict(PROXY_VERSIONS)
        self.broker_versions = None
        self.broker_open = asyncio.Event()  # the test says when the broker connection is up
        self.upstreams: list[FakeUpstream] = []
        self.token_checks = None  # no OAUTHBEARER
        self.broker_names = None  # a port per broker, no SNI routing
        self.principal_rules = ()  # no SSL listener

    def memory_for(self, tenant_id: str) -> TenantBudget:
        return TenantBudget(self.memory, 1 << 19)

    def login_registry(self) -> Any:
        return self.registry

    async def open_upstream(self, node_id: int | None, owner: Any, tenant_id: str | None = None) -> FakeUpstream:
        await self.broker_open.wait()
        upstream = FakeUpstream()
        upstream.owner = owner
        self.upstreams.append(upstream)
        return upstream

    def learn_brokers(self, seen: Any) -> None:
        return None


def frame(message: Message, version: int, corr: int, client_id: str | None = "app") -> bytes:
    """A request as a client sends it, size prefix included."""
    from tenantry.protocol.headers import encode_request_header

    assert message.API_KEY is not None
    body = encode_request_header(message.API_KEY, version, corr, client_id) + encode(message, version)
    return INT32.pack(len(body)) + body


def connect(server: FakeServer) -> tuple[ClientConnection, FakeTransport]:
    conn = ClientConnection(server, None)  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def send(conn: ClientConnection, data: bytes) -> None:
    """Deliver bytes as the event loop would, in as many reads as the connection's buffers take."""
    while data:
        buffer = conn.get_buffer(len(data))
        n = min(len(buffer), len(data))
        buffer[:n] = data[:n]
        conn.buffer_updated(n)
        data = data[n:]
