"""`tenantry tenant ...` and `tenantry user ...`: edit the tenants in the config file.

Passwords come from a prompt (asked twice) or, when stdin is not a terminal, from its first line;
never from the command line, where they would land in shell history and the process list.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from tenantry.tenants import admin
from tenantry.tenants.credentials import MECHANISMS
from tenantry.tenants.registry import Registry, RegistryError
from tenantry.tenants.store import StoreError, edit_config, load_registry


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config_help = "the proxy's TOML config file (env TENANTRY_CONFIG)"

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default=os.environ.get("TENANTRY_CONFIG"), help=config_help)
        return p

    tenant = sub.add_parser("tenant", help="add, list or remove tenants")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True)
    add = with_config(tsub.add_parser("add", help="add a tenant"))
    add.add_argument("name")
    add.add_argument("--prefix", help="hidden name prefix on the cluster (default: NAME.)")
    with_config(tsub.add_parser("list", help="list tenants, prefixes and users"))
    remove = with_config(tsub.add_parser("remove", help="remove a tenant and its users"))
    remove.add_argument("name")

    user = sub.add_parser("user", help="add, remove or re-password a tenant's users")
    usub = user.add_subparsers(dest="user_command", required=True)
    uadd = with_config(usub.add_parser("add", help="add a user (or another mechanism for it)"))
    uadd.add_argument("tenant")
    uadd.add_argument("user")
    uadd.add_argument("--mechanism", choices=MECHANISMS, default="SCRAM-SHA-512")
    uremove = with_config(usub.add_parser("remove", help="remove a user"))
    uremove.add_argument("tenant")
    uremove.add_argument("user")
    passwd = with_config(usub.add_parser("passwd", help="set a user's password for all its mechanisms"))
    passwd.add_argument("tenant")
    passwd.add_argument("user")

    quota = sub.add_parser("quota", help="set or show a tenant's quotas (a running proxy applies them live)")
    qsub = quota.add_subparsers(dest="quota_command", required=True)
    qset = with_config(qsub.add_parser("set", help="set quotas; 0 removes one (unlimited)"))
    qset.add_argument("tenant")
    qset.add_argument("--user", help="set this user's own quotas inside the tenant instead")
    for key, kind in QUOTA_FLAGS.items():
        qset.add_argument("--" + key.replace("_", "-"), type=kind, metavar="N")
    qshow = with_config(qsub.add_parser("show", help="show a tenant's quotas and limits as in force"))
    qshow.add_argument("tenant")


QUOTA_FLAGS: dict[str, type] = {
    "produce_bytes_per_sec": float, "fetch_bytes_per_sec": float, "requests_per_sec": float,
    "connections_per_sec": float, "max_connections": int, "burst_seconds": float,
}


def read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise RegistryError("the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise RegistryError("an empty password is not allowed")
    return password


def run(args: argparse.Namespace) -> int:
    if not args.config:
        print("tenantry: give --config FILE or set TENANTRY_CONFIG", file=sys.stderr)
        return 2
    path = Path(args.config)
    try:
        if args.command == "tenant" and args.tenant_command == "list":
            for tenant in load_registry(path).tenants.values():
                users = ", ".join(f"{u.name} ({'/'.join(u.credentials)})" for u in tenant.users.values())
                print(f"{tenant.id}\tprefix {tenant.prefix}\tusers: {users or '-'}")
            return 0
        if args.command == "quota" and args.quota_command == "show":
            print(_show_quotas(load_registry(path), args.tenant))
            return 0
        password = read_password() if args.command == "user" and args.user_command in ("add", "passwd") else ""
        with edit_config(path) as data:
            message = _apply(args, data, password)
        print(message)
        return 0
    except (RegistryError, StoreError) as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 1


def _show_quotas(registry: Registry, tenant_id: str) -> str:
    tenant = registry.tenants.get(tenant_id)
    if tenant is None:
        raise RegistryError(f"tenant {tenant_id}: no such tenant")
    lines = [f"tenant {tenant.id}", f"  quotas: {_pairs(tenant.quotas.to_dict()) or 'unlimited'}"]
    lines += [f"  user {name}: {_pairs(spec.to_dict())}" for name, spec in tenant.user_quotas.items()]
    lines.append(f"  limits: {_pairs(tenant.limits.to_dict()) or 'none'}")
    return "\n".join(lines)


def _pairs(values: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _apply(args: argparse.Namespace, data: dict[str, object], password: str) -> str:
    if args.command == "quota":
        values = {key: getattr(args, key) for key in QUOTA_FLAGS}
        if all(v is None for v in values.values()):
            raise RegistryError("give at least one quota, e.g. --produce-bytes-per-sec 1048576")
        if any(v is not None and v < 0 for v in values.values()):
            raise RegistryError("quotas are positive numbers (0 removes one)")
        now = admin.set_quotas(data, args.tenant, values, args.user)
        who = f"user {args.user} of tenant {args.tenant}" if args.user else f"tenant {args.tenant}"
        shown = {k: v for k, v in now.items() if k != "users"}
        return f"quotas of {who}: {_pairs(shown) or 'unlimited'}"
    if args.command == "tenant":
        if args.tenant_command == "add":
            admin.add_tenant(data, args.name, args.prefix)
            return f"added tenant {args.name}"
        admin.remove_tenant(data, args.name)
        return f"removed tenant {args.name} (a running proxy closes its connections on reload)"
    if args.user_command == "add":
        admin.add_user(data, args.tenant, args.user, args.mechanism, password)
        return f"added {args.mechanism} credentials for {args.user} in tenant {args.tenant}"
    if args.user_command == "remove":
        admin.remove_user(data, args.tenant, args.user)
        return f"removed user {args.user} from tenant {args.tenant}"
    mechanisms = admin.set_password(data, args.tenant, args.user, password)
    return f"changed the password of {args.user} ({', '.join(mechanisms)})"
