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

from tenantry.proxy.cli_store import (
    FileStore,
    add_move_parsers,
    add_store_flags,
    command_line,
    move_tenants,
    open_store,
)
from tenantry.tenants import admin
from tenantry.tenants.credentials import MECHANISMS
from tenantry.tenants.registry import AUTHORIZATION_MODES, Registry, RegistryError
from tenantry.tenants.store import StoreError


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config_help = "the proxy's TOML config file (env TENANTRY_CONFIG)"

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default=os.environ.get("TENANTRY_CONFIG"), metavar="FILE", help=config_help)
        add_store_flags(p)
        return p

    def tenant_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("tenant", metavar="TENANT", help="the tenant's id")

    def user_args(p: argparse.ArgumentParser) -> None:
        tenant_arg(p)
        p.add_argument("user", metavar="USER", help="the user's name, as clients log in with it")

    tenant = sub.add_parser("tenant", help="add, list or remove tenants")
    tsub = tenant.add_subparsers(dest="tenant_command", required=True, metavar="COMMAND")
    add = with_config(tsub.add_parser("add", help="add a tenant (creates the file if it does not exist)"))
    add.add_argument("name", metavar="TENANT", help="the new tenant's id: lowercase letters, digits and '-'")
    add.add_argument("--prefix", metavar="PREFIX", help="hidden name prefix on the cluster (default: TENANT.)")
    add.add_argument("--allow-auto-create-topics", action="store_true",
                     help="let the tenant's clients create topics by using them (Metadata and Produce), as "
                          "auto.create.topics.enable does on a broker; off by default")
    with_config(tsub.add_parser("list", help="list tenants, prefixes and users"))
    add_move_parsers(tsub, with_config)
    remove = with_config(tsub.add_parser("remove", help="remove a tenant and its users"))
    remove.add_argument("name", metavar="TENANT", help="the tenant's id")
    tset = with_config(tsub.add_parser("set", help="set how a tenant's requests are authorized (a running proxy "
                                                   "applies it live)"))
    tset.add_argument("name", metavar="TENANT", help="the tenant's id")
    tset.add_argument("--authorization", choices=AUTHORIZATION_MODES,
                      help="open: every user may do everything in the tenant (the default); acls: admin users "
                           "may, the others what the tenant's ACLs allow (managed with kafka-acls through the "
                           "proxy)")
    tset.add_argument("--admin-users", metavar="U1,U2", type=lambda v: [u for u in v.split(",") if u],
                      help="users who may manage the tenant's ACLs and are never checked against them "
                           "(an empty value removes them all)")

    user = sub.add_parser("user", help="add, remove or re-password a tenant's users")
    usub = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    uadd = with_config(usub.add_parser("add", help="add a user (or another mechanism for it); the password is "
                                                   "read from a prompt, or from stdin's first line"))
    user_args(uadd)
    uadd.add_argument("--mechanism", choices=MECHANISMS, default="SCRAM-SHA-512",
                      help="the SASL mechanism the user logs in with (default: SCRAM-SHA-512)")
    uadd.add_argument("--certificate", action="store_true",
                      help="a user who logs in with a client certificate on an SSL listener (its subject mapped "
                           "to this name by ssl_principal_mapping_rules): no password is asked or stored")
    user_args(with_config(usub.add_parser("remove", help="remove a user")))
    user_args(with_config(usub.add_parser("passwd", help="set a user's password for all its mechanisms")))

    quota = sub.add_parser("quota", help="set or show a tenant's quotas (a running proxy applies them live)")
    qsub = quota.add_subparsers(dest="quota_command", required=True, metavar="COMMAND")
    qset = with_config(qsub.add_parser("set", help="set quotas; 0 removes one (unlimited)"))
    tenant_arg(qset)
    qset.add_argument("--user", metavar="USER", help="set this user's own quotas inside the tenant instead")
    for key, (kind, metavar, text) in QUOTA_FLAGS.items():
        qset.add_argument("--" + key.replace("_", "-"), type=kind, metavar=metavar, help=text)
    qshow = with_config(qsub.add_parser("show", help="show a tenant's quotas and limits as in force"))
    tenant_arg(qshow)


QUOTA_FLAGS: dict[str, tuple[type, str, str]] = {
    "produce_bytes_per_sec": (float, "BYTES", "produce bandwidth of the tenant (or user), bytes per second"),
    "fetch_bytes_per_sec": (float, "BYTES", "fetch bandwidth, bytes per second"),
    "requests_per_sec": (float, "N", "requests per second, of any kind"),
    "connections_per_sec": (float, "N", "new connections per second"),
    "max_connections": (int, "N", "connections open at once"),
    "burst_seconds": (float, "SECONDS", "how many seconds of the rate may be spent at once (default 1)"),
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


def config_path(args: argparse.Namespace) -> Path | None:
    """The --config file (or TENANTRY_CONFIG), or None after telling the operator to give one."""
    if not args.config:
        print("tenantry: give --config FILE or set TENANTRY_CONFIG", file=sys.stderr)
        return None
    return Path(args.config)


def run(args: argparse.Namespace) -> int:
    store = open_store(args)
    if store is None:
        return 2
    try:
        if args.command == "tenant" and args.tenant_command == "list":
            for tenant in store.registry().tenants.values():
                users = ", ".join(f"{u.name} ({'/'.join(u.credentials)})" for u in tenant.users.values())
                access = (f"\tauthorization acls, admins: {', '.join(sorted(tenant.admin_users)) or '-'}, "
                          f"{len(tenant.acls.bindings)} ACLs" if tenant.authorization == "acls" else "")
                print(f"{tenant.id}\tprefix {tenant.prefix}\tusers: {users or '-'}{access}")
            return 0
        if args.command == "quota" and args.quota_command == "show":
            print(_show_quotas(store.registry(), args.tenant))
            return 0
        if args.command == "tenant" and args.tenant_command in ("export", "import"):
            print(move_tenants(args, store))
            return 0
        if isinstance(store, FileStore):
            creating = args.command == "tenant" and args.tenant_command == "add" and not store.path.exists()
            if not creating and not store.path.exists():
                raise StoreError(f"{store.path}: no such file (`tenantry tenant add` creates one)")
            if creating:
                print(f"tenantry: {store.path} does not exist; creating it", file=sys.stderr)
        asks = args.command == "user" and (args.user_command == "passwd" or
                                           (args.user_command == "add" and not args.certificate))
        password = read_password() if asks else ""
        with store.edit(command_line()) as data:
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
            admin.add_tenant(data, args.name, args.prefix, args.allow_auto_create_topics)
            auto = " (clients may create topics by using them)" if args.allow_auto_create_topics else ""
            return f"added tenant {args.name}{auto}"
        if args.tenant_command == "set":
            if args.authorization is None and args.admin_users is None:
                raise RegistryError("give --authorization or --admin-users")
            return f"tenant {args.name}: " + admin.set_authorization(data, args.name, args.authorization,
                                                                     args.admin_users)
        admin.remove_tenant(data, args.name)
        return f"removed tenant {args.name} (a running proxy closes its connections on reload)"
    if args.user_command == "add" and args.certificate:
        admin.add_certificate_user(data, args.tenant, args.user)
        return f"added {args.user} to tenant {args.tenant}, to log in with a client certificate"
    if args.user_command == "add":
        admin.add_user(data, args.tenant, args.user, args.mechanism, password)
        return f"added {args.mechanism} credentials for {args.user} in tenant {args.tenant}"
    if args.user_command == "remove":
        admin.remove_user(data, args.tenant, args.user)
        return f"removed user {args.user} from tenant {args.tenant}"
    mechanisms = admin.set_password(data, args.tenant, args.user, password)
    return f"changed the password of {args.user} ({', '.join(mechanisms)})"
