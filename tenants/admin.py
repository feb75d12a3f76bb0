"""Operator actions on the tenants section of a parsed config file (used by the CLI).

The file may be a tomlkit document, whose containers copy what is put in them: so every entry is
built whole before it is inserted, and a container is looked up again (never kept from `setdefault`)
before it is changed.
"""

from __future__ import annotations

from typing import Any

from tenantry.tenants.credentials import create_credential
from tenantry.tenants.registry import RegistryError, default_prefix


def _tenants(data: dict[str, Any]) -> list[dict[str, Any]]:
    if "tenants" not in data:
        data["tenants"] = []
    tenants: list[dict[str, Any]] = data["tenants"]
    return tenants


def _table(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """parent[key], made an empty table first if missing."""
    if key not in parent:
        parent[key] = {}
    table: dict[str, Any] = parent[key]
    return table


def _find_tenant(data: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    for tenant in _tenants(data):
        if tenant.get("id") == tenant_id:
            return tenant
    raise RegistryError(f"tenant {tenant_id}: no such tenant")


def _find_user(data: dict[str, Any], tenant_id: str, name: str) -> dict[str, Any]:
    for user in _find_tenant(data, tenant_id).get("users", []):
        if user.get("name") == name:
            return user  # type: ignore[no-any-return]
    raise RegistryError(f"tenant {tenant_id}: no user {name}")


def add_tenant(data: dict[str, Any], tenant_id: str, prefix: str | None = None,
               allow_auto_create_topics: bool = False) -> None:
    if any(t.get("id") == tenant_id for t in _tenants(data)):
        raise RegistryError(f"tenant {tenant_id}: already exists")
    entry: dict[str, Any] = {"id": tenant_id, "prefix": prefix or default_prefix(tenant_id)}
    if allow_auto_create_topics:
        entry["allow_auto_create_topics"] = True
    _tenants(data).append(entry)


def remove_tenant(data: dict[str, Any], tenant_id: str) -> None:
    tenant = _find_tenant(data, tenant_id)
    _tenants(data).remove(tenant)


def add_user(data: dict[str, Any], tenant_id: str, name: str, mechanism: str, password: str) -> None:
    """Add a user, or a further mechanism to an existing user of that tenant."""
    tenant = _find_tenant(data, tenant_id)
    user = next((u for u in tenant.get("users", []) if u.get("name") == name), None)
    if user is not None and mechanism in user.get("credentials", {}):
        raise RegistryError(f"user {name}: already has {mechanism}; use `user passwd` to change it")
    credential = create_credential(mechanism, password).to_dict()
    if user is not None:
        _table(user, "credentials")[mechanism] = credential
    elif "users" in tenant:
        tenant["users"].append({"name": name, "credentials": {mechanism: credential}})
    else:
        tenant["users"] = [{"name": name, "credentials": {mechanism: credential}}]


def add_certificate_user(data: dict[str, Any], tenant_id: str, name: str) -> None:
    """Add a user without credentials: it can log in only with a client certificate (an SSL listener)."""
    tenant = _find_tenant(data, tenant_id)
    if any(u.get("name") == name for u in tenant.get("users", [])):
        raise RegistryError(f"user {name}: already exists in tenant {tenant_id}")
    if "users" in tenant:
        tenant["users"].append({"name": name})
    else:
        tenant["users"] = [{"name": name}]


def remove_user(data: dict[str, Any], tenant_id: str, name: str) -> None:
    tenant = _find_tenant(data, tenant_id)
    user = _find_user(data, tenant_id, name)
    tenant["users"].remove(user)


def set_password(data: dict[str, Any], tenant_id: str, name: str, password: str) -> list[str]:
    """New credentials, from one password, for every mechanism the user has; returns the mechanisms."""
    user = _find_user(data, tenant_id, name)
    mechanisms = list(user.get("credentials", {}))
    for mechanism in mechanisms:
        user["credentials"][mechanism] = create_credential(mechanism, password).to_dict()
    return mechanisms


def set_quotas(data: dict[str, Any], tenant_id: str, values: dict[str, float | None],
               user: str | None = None) -> dict[str, Any]:
    """Set (a positive number) or remove (0) quotas of a tenant, or of one of its users; returns them."""
    tenant = _find_tenant(data, tenant_id)
    quotas = _table(tenant, "quotas")
    if user is not None:
        _find_user(data, tenant_id, user)
        quotas = _table(_table(quotas, "users"), user)
    for key, value in values.items():
        if value is None:
            continue
        if value == 0:
            quotas.pop(key, None)
        else:
            quotas[key] = int(value) if float(value).is_integer() else value
    return quotas


def set_authorization(data: dict[str, Any], tenant_id: str, mode: str | None, admin_users: list[str] | None) -> str:
    """Set how a tenant's requests are authorized ("open" or "acls") and who administers its ACLs; returns a
    summary of both as now set."""
    tenant = _find_tenant(data, tenant_id)
    if mode is not None:
        tenant["authorization"] = mode
    if admin_users is not None:
        if admin_users:
            tenant["admin_users"] = sorted(set(admin_users))
        else:
            tenant.pop("admin_users", None)
    admins = ", ".join(tenant.get("admin_users", [])) or "none"
    return f"authorization {tenant.get('authorization', 'open')}, admin users: {admins}"


def replace_acls(data: dict[str, Any], tenant_id: str, acls: list[dict[str, str]]) -> None:
    """Store a tenant's ACL bindings (the proxy's CreateAcls and DeleteAcls write them here)."""
    tenant = _find_tenant(data, tenant_id)
    if acls:
        tenant["acls"] = acls
    else:
        tenant.pop("acls", None)


def set_encryption(data: dict[str, Any], tenant_id: str, globs: list[str], enable: bool) -> str:
    """Seal (enable) or stop sealing (disable) a tenant's records on topics matching `globs`. Disabled globs
    stay in read_topics, so records sealed before remain readable. Returns a summary of the table now."""
    if not globs:
        raise RegistryError("give at least one topic name or glob")
    tenant = _find_tenant(data, tenant_id)
    table = tenant.get("encryption", {})
    topics = [g for g in table.get("topics", []) if g not in globs]
    read_topics = [g for g in table.get("read_topics", []) if g not in globs]
    (topics if enable else read_topics).extend(globs)
    new = {**({"topics": topics} if topics else {}), **({"read_topics": read_topics} if read_topics else {})}
    if new:
        tenant["encryption"] = new
    else:
        tenant.pop("encryption", None)
    return (f"encrypted topics: {', '.join(topics) or 'none'}; "
            f"opened only (encryption turned off): {', '.join(read_topics) or 'none'}")
