"""The proxy server: a bootstrap listener, one listener per upstream broker, and orderly shutdown.

Broker N is served on ``broker_port_base + N`` so that every proxy replica advertises the same
addresses. Listeners open for every broker the upstream's metadata names at start, and for any broker
that appears later in a response, before that response reaches the client.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.api_versions_response import ApiVersionsResponse
from tenantry.protocol.messages.metadata_request import MetadataRequest, MetadataRequestTopic
from tenantry.protocol.schema import Versions
from tenantry.proxy import monitor
from tenantry.proxy.admin_http import AdminListener
from tenantry.proxy.authorization.check import DenialLog
from tenantry.proxy.broker_identity import TenantIdentities
from tenantry.proxy.config import ProxyConfig, salt_secret, split_host_port
from tenantry.proxy.connection import ClientConnection
from tenantry.proxy.fetch_sessions import FetchSessionOwners
from tenantry.proxy.fleet import FleetCoordinator
from tenantry.proxy.guard import Guard
from tenantry.proxy.health import Health
from tenantry.proxy.kafka_store import KafkaTenants, TenantStoreError
from tenantry.proxy.memory import MemoryBudget, TenantBudget
from tenantry.proxy.monitor import UsageWindow
from tenantry.proxy.oauth_client import TokenSource
from tenantry.proxy.oauth_keys import token_checks
from tenantry.proxy.prelogin import PreLoginLimits
from tenantry.proxy.probe import Probe
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.record_encryption import envelopes_for
from tenantry.proxy.rewrite.topic_ids import TopicIds
from tenantry.proxy.sni import BrokerNames
from tenantry.proxy.stats import BOOTSTRAP, Stats
from tenantry.proxy.tenant_checks import setup_problems
from tenantry.proxy.tls import server_context, upstream_context
from tenantry.proxy.upstream import UpstreamConnection, UpstreamError, UpstreamOwner
from tenantry.tenants.principal_rules import parse_rules
from tenantry.tenants.registry import Registry

log = logging.getLogger("tenantry.server")


class ProxyServer:
    def __init__(self, config: ProxyConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.connections: set[ClientConnection] = set()
        self.brokers: dict[int, tuple[str, int]] = {}
        self.listeners: dict[int | None, asyncio.Server] = {}
        self._opening: dict[int, asyncio.Task[None]] = {}
        self._bootstrap_cycle = itertools.cycle(config.upstream_addresses())
        self._stopping = False
        self.memory = MemoryBudget(config.max_buffered_bytes)
        self._tenant_memory: dict[str, TenantBudget] = {}
        self.prelogin = PreLoginLimits(config)
        self.registry = registry or Registry()
        self.topic_ids = TopicIds()
        self.secret = salt_secret(config)  # keys the SCRAM salts invented for unknown users
        self.identities = TenantIdentities(config.upstream_identity if config.tenants_enabled and
                                           config.upstream_sasl else "service",
                                           self.secret)
        self.api_table: dict[int, Versions] = {}  # what the proxy and the brokers support, for pre-login ApiVersions
        self.broker_versions: ApiVersionsResponse | None = None
        self.overrides: dict[str, Any] = {}  # the command line's settings, which a reloaded file cannot change
        self.config_path: Path | None = None  # the file reloads read (SIGHUP, changes, POST /reload)
        self.tls = server_context(config)
        self.token_checks = token_checks(config)  # OAUTHBEARER logins: the issuer's keys and the token rules
        self.broker_names = BrokerNames(config.sni_broker_host_pattern) if config.sni_broker_host_pattern else None
        self.principal_rules = (parse_rules(config.ssl_principal_mapping_rules)
                                if config.listener_security_protocol == "SSL" else ())
        self.upstream_tls = upstream_context(config)  # replaced whole on reload (tls.reload_upstream)
        self.upstream_tokens = (TokenSource(config.upstream_sasl_oauthbearer_token_endpoint_url,
                                            config.upstream_sasl_username, config.upstream_sasl_password,
                                            config.upstream_sasl_oauthbearer_scope)
                                if config.upstream_sasl and config.upstream_sasl_mechanism == "OAUTHBEARER" else None)
        self.quotas = QuotaBook(config)
        self.fleet = FleetCoordinator(config, self.quotas) if config.quota_coordination == "kafka" else None
        self.tenant_store = KafkaTenants(self) if config.tenant_store == "kafka" else None
        self.guard = Guard()
        self.fetch_sessions = FetchSessionOwners()
        self.denials = DenialLog()  # which ACL denials are logged (all are counted)
        self.envelopes = envelopes_for(config)  # record encryption's keys (None: no tenant may encrypt)
        self.stats = Stats(config.metrics_label_limit)
        self.draining = False  # SIGTERM: /readyz says no, so load balancers stop sending clients
        self.health = Health(self)
        self.usage = UsageWindow(self.quotas)
        self.admin: AdminListener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.probe = Probe(self) if config.probe_tenants else None
        self._login_registry: tuple[Registry, Registry] | None = None  # (config's, with probe users)

    async def start(self) -> None:
        # The operators' listener comes first, so that while the cluster cannot be reached an orchestrator
        # sees a live process that is not ready, instead of one that crashes and restarts in a loop.
        if self.config.metrics_listen:
            self.admin = AdminListener(self)
            await self.admin.start(*split_host_port(self.config.metrics_listen, "metrics_listen"))
        # Learn the brokers and their API versions first: a client may ask for ApiVersions at once.
        await self._reach_cluster()
        if self.tenant_store is not None:  # before the listeners: nobody logs in against no tenants
            self.registry = await self.tenant_store.load()
            problems = setup_problems(self.config, self.registry)
            if problems:
                raise TenantStoreError("; ".join(problems))
        if self.identities.mode != "service":
            service = await self.open_upstream(None, None)
            try:
                await self.identities.start(service, self.registry.tenants.values())
            finally:
                service.close()
        loop = asyncio.get_running_loop()
        self.listeners[None] = await loop.create_server(
            lambda: ClientConnection(self, None), self.config.listen_host, self.config.listen_port,
            reuse_address=True, reuse_port=self.config.workers > 1, ssl=self.tls)
        log.info("bootstrap listener on %s, advertising %s", self.config.listen, self.config.advertised_host)
        self._tasks = [loop.create_task(coro) for coro in (
            self.quotas.run_tuner(), self.health.run(), monitor.watch(self.stats, self.usage))]
        if self.probe is not None:
            self._tasks.append(loop.create_task(self.probe.run()))
        if self.fleet is not None:
            self._tasks.append(loop.create_task(self.fleet.run()))
        if self.tenant_store is not None:
            self._tasks.append(loop.create_task(self.tenant_store.follow()))

    def retry_listeners(self) -> Awaitable[object] | None:
        """Try again to open the listeners of brokers whose port could not be had."""
        return self.learn_brokers([(n, *self.brokers[n]) for n in self.health.listener_failures if n in self.brokers])

    async def _reach_cluster(self) -> None:
        """Ask the upstream for its brokers until it answers, backing off up to 30 s between tries."""
        delay = 1.0
        while True:
            try:
                await self.refresh_brokers()
            except UpstreamError as exc:
                self.health.starting(str(exc))
                log.error("the upstream cluster cannot be reached (%s); not ready, retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            self.health.started()
            return

    def sni_port(self, node_id: int) -> int:
        """With SNI routing, every broker's advertised port: the listen port."""
        return self.config.listen_port

    def memory_for(self, tenant_id: str) -> TenantBudget:
        """A tenant's part of the large-frame budget (max_buffered_bytes_per_tenant)."""
        budget = self._tenant_memory.get(tenant_id)
        if budget is None:
            cap = self.config.max_buffered_bytes_per_tenant or self.config.max_buffered_bytes // 2
            budget = self._tenant_memory[tenant_id] = TenantBudget(self.memory, cap)
        return budget

    def login_registry(self) -> Registry:
        """The users clients may log in as: the config's, plus the end-to-end probe's own."""
        if self.probe is None:
            return self.registry
        if self._login_registry is None or self._login_registry[0] is not self.registry:
            self._login_registry = (self.registry, self.registry.with_users(self.probe.users))
        return self._login_registry[1]

    async def refresh_brokers(self) -> None:
        """Ask the upstream which brokers exist and open a listener for each."""
        conn = await self.open_upstream(None, None)
        self.api_table, self.broker_versions = conn.table, conn.broker_versions
        try:
            version = min(12, conn.table[ApiKey.METADATA].hi or 12)
            metadata = await conn.request(MetadataRequest(topics=[]), version)
        finally:
            conn.close()
        pending = self.learn_brokers([(b.node_id, b.host, b.port) for b in metadata.brokers])
        if pending is not None:
            await pending

    async def look_up_topic_ids(self, conn: UpstreamConnection, ids: set[uuid.UUID]) -> None:
        """Ask the broker, as the proxy, which topics these ids name, and remember the answers."""
        version = min(12, conn.table[ApiKey.METADATA].hi or 12)
        if version < 12:
            return  # brokers answer lookups by id from Metadata v12 on; unknown ids stay foreign
        metadata = await conn.request(MetadataRequest(
            topics=[MetadataRequestTopic(topic_id=i, name=None) for i in ids], allow_auto_topic_creation=False),
            version)
        for topic in metadata.topics:
            if topic.name and topic.error_code == 0:
                self.topic_ids.learn(topic.topic_id, topic.name)

    def learn_brokers(self, brokers: list[tuple[int, str, int]]) -> Awaitable[object] | None:
        """Record upstream addresses; return an awaitable if a listener is still being opened."""
        waiting = []
        for node_id, host, port in brokers:
            if node_id < 0:
                continue
            if self.brokers.get(node_id) != (host, port):
                self.brokers[node_id] = (host, port)
                log.info("broker %d is at %s:%d upstream, served on port %d", node_id, host, port,
                         self.config.broker_port(node_id))
            if node_id in self.listeners or self._stopping or self.broker_names is not None:
                continue  # with SNI routing the bootstrap listener serves every broker
            task = self._opening.get(node_id)
            if task is None:
                task = asyncio.get_running_loop().create_task(self._open_listener(node_id))
                self._opening[node_id] = task
            waiting.append(task)
        return asyncio.gather(*waiting) if waiting else None

    async def _open_listener(self, node_id: int) -> None:
        port = self.config.broker_port(node_id)
        try:
            self.listeners[node_id] = await asyncio.get_running_loop().create_server(
                lambda: ClientConnection(self, node_id), self.config.listen_host, port, reuse_address=True,
                reuse_port=self.config.workers > 1, ssl=self.tls)
            self.health.listener_failures.pop(node_id, None)
        except OSError as exc:
            self.health.listener_failures[node_id] = f"port {port}: {exc.strerror or exc}"
            log.error("cannot listen for broker %d on port %d: %s; clients cannot reach that broker, and the "
                      "proxy is not ready until it can (retried at every health check)", node_id, port, exc)
        finally:
            self._opening.pop(node_id, None)

    async def open_upstream(self, node_id: int | None, owner: UpstreamOwner | None,
                            tenant_id: str | None = None) -> UpstreamConnection:
        """An authenticated connection to broker `node_id` (any bootstrap server for None), logged in as the
        tenant's broker user if tenants have their own (see :mod:`.broker_identity`), else as the service."""
        login = self.identities.login_for(tenant_id)
        if node_id is None:
            errors = []
            for _ in range(len(self.config.upstream)):
                host, port = next(self._bootstrap_cycle)
                try:
                    return await self._open_counted(BOOTSTRAP, host, port, owner, login)
                except UpstreamError as exc:
                    errors.append(str(exc))
            raise UpstreamError("no upstream bootstrap server answered: " + "; ".join(errors))
        if node_id not in self.brokers:
            await self.refresh_brokers()
        address = self.brokers.get(node_id)
        if address is None:
            raise UpstreamError(f"the upstream cluster has no broker {node_id}")
        return await self._open_counted(str(node_id), address[0], address[1], owner, login)

    async def _open_counted(self, broker: str, host: str, port: int, owner: UpstreamOwner | None,
                            login: tuple[str, str, str] | None = None) -> UpstreamConnection:
        stats = self.stats.brokers[broker]
        try:
            conn = await UpstreamConnection.open(self.config, self.memory, host, port, owner, login,
                                                 self.upstream_tls, self.upstream_tokens)
        except UpstreamError:
            stats.errors["connect"] += 1
            raise
        stats.connects += 1
        conn.broker, conn.stats = broker, stats
        self.learn_features(conn.broker_versions)
        return conn

    def learn_features(self, versions: ApiVersionsResponse | None) -> None:
        """Keep the newest finalized features any broker reported, for ApiVersions answered before login:
        a feature upgrade reaches clients with the next connection to any broker, not the next restart."""
        current = self.broker_versions
        if versions is not None and (current is None or
                                     versions.finalized_features_epoch >= current.finalized_features_epoch):
            self.broker_versions = versions

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish until shutdown_timeout_seconds, then close the rest."""
        self._stopping = True
        self.draining = True
        for task in self._tasks:
            task.cancel()
        # Let the probe's clients leave before the listeners close under them.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for server in self.listeners.values():
            server.close()
        connections = list(self.connections)
        for conn in connections:
            conn.drain()
        if connections:
            _, late = await asyncio.wait([c.done for c in connections], timeout=self.config.shutdown_timeout_seconds)
            for conn in connections:
                if not conn.done.done():
                    conn.abort()
            if late:
                log.warning("%d connections still had requests in flight at the shutdown deadline", len(late))
        for server in self.listeners.values():
            await server.wait_closed()
        if self.admin is not None:  # last: /readyz says "draining" to the end
            await self.admin.stop()
        log.info("proxy stopped")
