"""A tenant's ACLs changed through the Kafka ACL APIs: written to the config file, then applied.

The change is computed from the file's own copy, under the file's lock, so two proxies' (or a proxy's and
an operator's) changes cannot lose each other; the server then reloads the file, as on any edit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tenantry.proxy.authorization.acl_apis import AclStoreError
from tenantry.proxy.reload import reload_config
from tenantry.tenants import admin
from tenantry.tenants.acls import AclError, Acls
from tenantry.tenants.registry import RegistryError
from tenantry.tenants.store import StoreError, edit_config

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

T = TypeVar("T")


async def change_acls(server: ProxyServer, tenant_id: str,
                      change: Callable[[Acls], tuple[Acls, T]]) -> tuple[T, int, int]:
    """Apply `change` to the tenant's ACLs as the config file holds them; (its result, bindings before, after)."""
    path = server.config_path
    if path is None:
        raise AclStoreError("the proxy has no config file to keep ACLs in (start it with --config)")

    def edit() -> tuple[T, int, int]:
        with edit_config(path) as data:
            entry = _tenant_entry(data, tenant_id)
            current = Acls.from_config(_plain(entry.get("acls", [])))
            new, result = change(current)
            admin.replace_acls(data, tenant_id, new.to_config())
        return result, len(current.bindings), len(new.bindings)
    try:
        outcome = await asyncio.get_running_loop().run_in_executor(None, edit)
    except (StoreError, RegistryError, AclError, OSError) as exc:
        raise AclStoreError(str(exc)) from None
    reload_config(server, path)  # every connection sees the change with its next request
    return outcome


def _tenant_entry(data: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    for entry in data.get("tenants", []):
        if entry.get("id") == tenant_id:
            return entry  # type: ignore[no-any-return]
    raise AclStoreError(f"tenant {tenant_id} is no longer in the config file")


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value
