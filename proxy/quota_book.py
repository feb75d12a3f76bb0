"""The proxy's live quota state: one set of meters per tenant, in step with the config and the tuner."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from tenantry.proxy.config import ProxyConfig
from tenantry.tenants.autotune import AutoTuner
from tenantry.tenants.quotas import CONNECTIONS, FETCH, PRODUCE, Meters
from tenantry.tenants.registry import Registry, Tenant
from tenantry.tenants.token_bucket import Clock, TokenBucket

log = logging.getLogger("tenantry.quotas")


class QuotaBook:
    def __init__(self, config: ProxyConfig, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.max_delay = config.quota_max_delay_ms / 1000
        self.meters: dict[str, Meters] = {}
        self.accepts: TokenBucket | None = None  # new connections from anyone: KIP-612's rate, at accept
        self.tuner = AutoTuner({}, config.quota_idle_seconds, clock)
        self.capacity: dict[str, float] = {}  # as configured; this replica's slices are in self.tuner.capacity
        self.capacity_held: set[str] = set()  # capacities that held someone back since the fleet's last report
        self.slicer: Callable[[str, Meters], None] | None = None  # fleet coordination: this replica's slices
        self.apply_settings(config)

    def apply_settings(self, config: ProxyConfig) -> None:
        """Proxy-wide quota settings, at start and reloaded: new throttles and the next tuning use them."""
        self.max_delay = config.quota_max_delay_ms / 1000
        self.tune_interval = config.quota_tune_interval_ms / 1000
        self.capacity = {r: c for r, c in {PRODUCE: config.capacity_produce_bytes_per_sec,
                                           FETCH: config.capacity_fetch_bytes_per_sec,
                                           CONNECTIONS: config.capacity_connections_per_sec}.items() if c}
        self.reslice_capacity(self.capacity)
        self.tuner.idle_after = config.quota_idle_seconds

    def reslice_capacity(self, capacity: dict[str, float]) -> None:
        """The proxy-wide capacities this replica enforces: the configured ones, or its slices of the fleet's."""
        self.tuner.capacity = dict(capacity)
        rate = capacity.get(CONNECTIONS, 0.0)
        if not rate:
            self.accepts = None
        elif self.accepts is None:
            self.accepts = TokenBucket(rate, rate, self.clock())
        elif rate != self.accepts.rate:  # a reload or a new slice must not refill it
            self.accepts.retune(rate, rate, self.clock())

    def for_tenant(self, tenant: Tenant) -> Meters:
        meters = self.meters.get(tenant.id)
        if meters is None:
            meters = self.meters[tenant.id] = Meters(tenant.quotas, tenant.user_quotas, self.clock)
            if self.slicer is not None:
                self.slicer(tenant.id, meters)
        return meters

    def reconfigure(self, registry: Registry) -> None:
        """Apply reloaded quotas to live meters; a removed tenant's meters go once its connections have."""
        for tenant_id, meters in list(self.meters.items()):
            tenant = registry.tenants.get(tenant_id)
            if tenant is not None:
                meters.reconfigure(tenant.quotas, tenant.user_quotas)
                if self.slicer is not None:  # a new limit is sliced at once, not enforced whole until the next report
                    self.slicer(tenant_id, meters)
            elif meters.connections <= 0:
                del self.meters[tenant_id]

    def accept_delay(self) -> float:
        """Seconds a new connection must wait before it is served (0 if the proxy-wide rate allows it)."""
        if self.accepts is None:
            return 0.0
        delay = self.accepts.record(1, self.clock())
        if delay > 0:
            self.capacity_held.add(CONNECTIONS)
        return delay

    async def run_tuner(self) -> None:
        while True:
            await asyncio.sleep(self.tune_interval)
            if not self.tuner.capacity:  # none configured (or a reload took it away): no tuned shares
                for meters in self.meters.values():
                    meters.retune({})
                continue
            tuned = self.tuner.tick(self.meters)
            for tenant_id, rates in tuned.items():
                self.capacity_held.update(rates)
                if rates:
                    log.debug("tenant %s tuned to %s", tenant_id, {r: round(v) for r, v in rates.items()})
