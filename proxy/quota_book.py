"""The proxy's live quota state: one set of meters per tenant, in step with the config and the tuner."""

from __future__ import annotations

import asyncio
import logging
import time

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
        rate = config.capacity_connections_per_sec
        # New connections from anyone: the proxy-wide rate Kafka's KIP-612 applies at accept.
        self.accepts = TokenBucket(rate, rate, clock()) if rate else None
        self.tuner = AutoTuner({PRODUCE: config.capacity_produce_bytes_per_sec,
                                FETCH: config.capacity_fetch_bytes_per_sec,
                                CONNECTIONS: config.capacity_connections_per_sec},
                               config.quota_idle_seconds, clock)
        self.tune_interval = config.quota_tune_interval_ms / 1000

    def apply_settings(self, config: ProxyConfig) -> None:
        """Reloaded proxy-wide quota settings: new throttles and the next tuning use them."""
        self.max_delay = config.quota_max_delay_ms / 1000
        self.tune_interval = config.quota_tune_interval_ms / 1000
        rate = config.capacity_connections_per_sec
        if rate != (self.accepts.rate if self.accepts is not None else 0):  # a reload must not refill it
            self.accepts = TokenBucket(rate, rate, self.clock()) if rate else None
        self.tuner.capacity = {r: c for r, c in {PRODUCE: config.capacity_produce_bytes_per_sec,
                                                 FETCH: config.capacity_fetch_bytes_per_sec,
                                                 CONNECTIONS: config.capacity_connections_per_sec}.items() if c}
        self.tuner.idle_after = config.quota_idle_seconds

    def for_tenant(self, tenant: Tenant) -> Meters:
        meters = self.meters.get(tenant.id)
        if meters is None:
            meters = self.meters[tenant.id] = Meters(tenant.quotas, tenant.user_quotas, self.clock)
        return meters

    def reconfigure(self, registry: Registry) -> None:
        """Apply reloaded quotas to live meters; a removed tenant's meters go once its connections have."""
        for tenant_id, meters in list(self.meters.items()):
            tenant = registry.tenants.get(tenant_id)
            if tenant is not None:
                meters.reconfigure(tenant.quotas, tenant.user_quotas)
            elif meters.connections <= 0:
                del self.meters[tenant_id]

    def accept_delay(self) -> float:
        """Seconds a new connection must wait before it is served (0 if the proxy-wide rate allows it)."""
        return self.accepts.record(1, self.clock()) if self.accepts is not None else 0.0

    async def run_tuner(self) -> None:
        while True:
            await asyncio.sleep(self.tune_interval)
            if not self.tuner.capacity:  # none configured (or a reload took it away): no tuned shares
                for meters in self.meters.values():
                    meters.retune({})
                continue
            tuned = self.tuner.tick(self.meters)
            for tenant_id, rates in tuned.items():
                if rates:
                    log.debug("tenant %s tuned to %s", tenant_id, {r: round(v) for r, v in rates.items()})
