"""Live reload of the tenants: on SIGHUP and whenever the config file changes.

A file that does not parse or validate is refused with a clear log line and the last good tenants
stay in force. Connections are left alone unless what they logged in with changed: a removed user
or tenant, a new prefix, or new credentials close that user's connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tenantry.tenants.registry import RegistryError
from tenantry.tenants.store import StoreError, load_registry

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.reload")


def reload_tenants(server: ProxyServer, path: Path) -> bool:
    """Load the tenants from `path` into the running server; False (and a log line) if refused."""
    try:
        new = load_registry(path)
    except (StoreError, RegistryError) as exc:
        log.error("config reload refused, keeping the last good tenants: %s", exc)
        server.stats.reloads["refused"] += 1
        return False
    old, server.registry = server.registry, new
    server.stats.reloads["ok"] += 1
    server.stats.forget_tenants(set(new.tenants))
    server.quotas.reconfigure(new)  # quotas change live, without closing anyone's connections
    server.identities.changed(lambda: server.open_upstream(None, None), old.tenants.values(), new.tenants.values())
    closed = 0
    for conn in list(server.connections):
        name = conn.principal_name
        if name is not None and old.fingerprint(name) != new.fingerprint(name):
            conn.close(f"user {name} was removed or changed in the config")
            closed += 1
    log.info("reloaded %d tenants from %s; closed %d connections of changed users", len(new.tenants), path, closed)
    return True


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
            reload_tenants(server, path)
