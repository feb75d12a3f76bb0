"""Whether a set of tenants can run with the proxy's settings: checked at start, by `config check` and on
every reload, which is refused (the last good tenants staying in force) rather than run unsafely."""

from __future__ import annotations

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.fleet import topic_problems
from tenantry.proxy.record_encryption import encryption_problems
from tenantry.tenants.registry import Registry


def setup_problems(config: ProxyConfig, registry: Registry) -> list[str]:
    return encryption_problems(config, registry) + topic_problems(config, registry)
