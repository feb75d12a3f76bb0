"""Live reload of the config file: on SIGHUP and whenever the file changes.

A file that does not parse or validate is refused with a clear log line and the last good config
stays in force. Tenants, their quotas and limits change at once. Connections are left alone unless
what they logged in with changed: a removed user or tenant, a new prefix, or new credentials close
that user's connections. Proxy settings in :data:`LIVE_SETTINGS` apply at once (to new connections,
for those read when a connection opens); any other changed setting is logged at WARNING, as it
takes effect only after a restart. Flags still win over the file, as at start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from tenantry.proxy.config import ConfigError, ProxyConfig, load_config
from tenantry.proxy.tenant_checks import setup_problems
from tenantry.tenants.registry import Registry, RegistryError
from tenantry.tenants.store import StoreError, load_registry

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.reload")


LIVE_SETTINGS = frozenset({
    "log_level", "auth_failure_delay_ms", "login_timeout_ms", "sasl_session_lifetime_ms",
    "upstream_connect_timeout_seconds", "shutdown_timeout_seconds", "max_connection_age_seconds",
    "max_connection_age_jitter", "health_check_interval_seconds", "probe_interval_seconds", "max_in_flight",
    "quota_max_delay_ms", "quota_tune_interval_ms", "quota_idle_seconds", "capacity_produce_bytes_per_sec",
    "capacity_fetch_bytes_per_sec", "capacity_connections_per_sec", "max_unauthenticated_connections_per_ip",
    "unauthenticated_connections_per_ip_per_sec",
})


def reload_config(server: ProxyServer, path: Path) -> bool:
    """Load `path` into the running server; False (and a log line per problem) if refused. With tenant_store
    kafka, only the settings: the tenants come from the store."""
    from_file = server.config.tenant_store == "file"
    try:
        settings = load_config(path, server.overrides)
        new = load_registry(path) if from_file else server.registry
        problems = setup_problems(server.config, new) if from_file else []  # the key store is the running one
        if problems:
            raise ConfigError(*problems)
    except (ConfigError, StoreError, RegistryError) as exc:
        refuse(server, exc.problems if isinstance(exc, ConfigError) else [str(exc)], "config reload")
        return False
    apply_settings(server, settings, path)
    if from_file:
        apply_registry(server, new, str(path))
    else:
        server.stats.reloads["ok"] += 1
    return True


def refuse(server: ProxyServer, problems: list[str], what: str) -> None:
    for problem in problems:
        log.error("%s refused, keeping the last good configuration: %s", what, problem)
    server.stats.reloads["refused"] += 1


def apply_registry(server: ProxyServer, new: Registry, source: str) -> None:
    """New tenants in force: quotas change live; only the connections of changed or removed users close."""
    old, server.registry = server.registry, new
    server.stats.reloads["ok"] += 1
    server.stats.forget_tenants(set(new.tenants))
    server.quotas.reconfigure(new)  # quotas change live, without closing anyone's connections
    server.identities.changed(lambda: server.open_upstream(None, None), old.tenants.values(), new.tenants.values())
    closed = 0
    for conn in list(server.connections):
        name = conn.principal_name
        if name is not None and old.fingerprint(name) != new.fingerprint(name):
            conn.close(f"user {name} was removed or changed in {source}")
            closed += 1
    log.info("reloaded %d tenants from %s; closed %d connections of changed users", len(new.tenants), source, closed)


def apply_settings(server: ProxyServer, new: ProxyConfig, path: Path) -> list[str]:
    """Apply the settings that can change live; warn about the rest. Returns the names applied."""
    config = server.config
    before = config.redacted()
    changed = [f.name for f in fields(ProxyConfig) if getattr(config, f.name) != getattr(new, f.name)]
    applied = [name for name in changed if name in LIVE_SETTINGS]
    for name in applied:
        setattr(config, name, getattr(new, name))
        log.info("%s is now %r (was %r)", name, config.redacted()[name], before[name])
    if "log_level" in applied:
        logging.getLogger().setLevel(config.log_level.upper())
    server.quotas.apply_settings(config)
    server.prelogin.apply_settings(config)
    for name in changed:
        if name not in LIVE_SETTINGS:
            log.warning("%s changed in %s, but only a restart applies it: still %r", name, path, before[name])
    return applied


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


async def watch(server: ProxyServer, path: Path, interval: float) -> None:
    """Reload whenever the file's modification time or size changes (checked every `interval` s)."""
    last = _stamp(path)
    while True:
        await asyncio.sleep(interval)
        now = _stamp(path)
        if now is not None and now != last:
            last = now
            reload_config(server, path)
