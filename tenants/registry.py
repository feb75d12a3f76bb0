"""Tenants and their users, validated as a whole: ids, prefixes that cannot overlap, unique principals."""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from tenantry.tenants.acls import AclError, Acls
from tenantry.tenants.credentials import (
    DEFAULT_SALT_BYTES,
    MECHANISMS,
    SCRAM_ITERATIONS,
    Credential,
    PlainCredential,
    ScramCredential,
)
from tenantry.tenants.encryption_policy import EncryptionPolicy, EncryptionPolicyError
from tenantry.tenants.limits import LimitError, Limits
from tenantry.tenants.naming import Namespace
from tenantry.tenants.quotas import QuotaError, QuotaSpec

_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PREFIX = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}")
_USER = re.compile(r"[A-Za-z0-9._@-]{1,128}")
#: The end-to-end probe's hidden users are `tenantry:probe:<tenant>`: no configured user name may hold a ':',
#: so no tenant's user can pass for one.
PROBE_USER_PREFIX = "tenantry:probe:"
TENANT_KEYS = ("id", "prefix", "users", "allow_auto_create_topics", "quotas", "limits", "authorization",
               "admin_users", "acls", "encryption")
#: "open": every user of a tenant may do everything in it; "acls": its admin users may, the others only
#: what the tenant's ACLs allow (see :mod:`tenantry.tenants.acls`).
AUTHORIZATION_MODES = ("open", "acls")
USER_KEYS = ("name", "credentials")


class RegistryError(ValueError):
    """The tenants section is invalid; the message names the tenant or user and the problem."""


@dataclass
class User:
    name: str
    credentials: dict[str, Credential] = field(default_factory=dict)  # by mechanism


@dataclass
class Tenant:
    id: str
    prefix: str
    users: dict[str, User] = field(default_factory=dict)
    allow_auto_create_topics: bool = False
    quotas: QuotaSpec = field(default_factory=QuotaSpec)
    user_quotas: dict[str, QuotaSpec] = field(default_factory=dict)  # overrides inside the tenant
    limits: Limits = field(default_factory=Limits)
    authorization: str = "open"
    admin_users: frozenset[str] = frozenset()
    acls: Acls = field(default_factory=Acls)
    encryption: EncryptionPolicy = field(default_factory=EncryptionPolicy)

    @property
    def namespace(self) -> Namespace:
        return Namespace(self.prefix)

    def checks_acls_of(self, user: str) -> bool:
        """Whether `user`'s requests are checked against the tenant's ACLs: not its admins' (its super
        users), nor the end-to-end probe's, whose topic and group the tenant's ACLs know nothing of."""
        return (self.authorization == "acls" and user not in self.admin_users
                and not user.startswith(PROBE_USER_PREFIX))  # is_probe_user, inline: asked on every request


def is_probe_user(name: str) -> bool:
    return name.startswith(PROBE_USER_PREFIX)


def default_prefix(tenant_id: str) -> str:
    return f"{tenant_id}."


@dataclass
class Registry:
    tenants: dict[str, Tenant] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._principals: dict[str, tuple[Tenant, User]] = {}
        prefixes: list[tuple[str, str]] = []
        for tenant in self.tenants.values():
            for other_id, other in prefixes:
                if other.startswith(tenant.prefix) or tenant.prefix.startswith(other):
                    raise RegistryError(f"tenant {tenant.id}: prefix {tenant.prefix!r} overlaps tenant {other_id}'s "
                                        f"{other!r}; one tenant's names could then name the other's")
            prefixes.append((tenant.id, tenant.prefix))
            for user in tenant.users.values():
                if user.name in self._principals:
                    raise RegistryError(f"user {user.name}: belongs to tenants {self._principals[user.name][0].id} "
                                        f"and {tenant.id}; a user belongs to exactly one tenant")
                self._principals[user.name] = (tenant, user)
        self._scram_shapes = _scram_shapes(self.tenants.values())

    def scram_shape(self, mechanism: str) -> tuple[int, int]:
        """(salt length, iterations) most real credentials of `mechanism` have: an invented credential for an
        unknown user (or a mechanism a user lacks) must look the same."""
        return self._scram_shapes.get(mechanism, (DEFAULT_SALT_BYTES, SCRAM_ITERATIONS))

    def with_users(self, extra: dict[str, User]) -> Registry:
        """A copy with more users (tenant id -> user) that the config file does not list."""
        tenants = dict(self.tenants)
        for tenant_id, user in extra.items():
            tenant = tenants.get(tenant_id)
            if tenant is not None:
                tenants[tenant_id] = replace(tenant, users={**tenant.users, user.name: user})
        return Registry(tenants)

    def lookup(self, username: str) -> tuple[Tenant, User] | None:
        return self._principals.get(username)

    def fingerprint(self, username: str) -> object:
        """What identifies a user's access: changes when its tenant, prefix or credentials change."""
        found = self.lookup(username)
        if found is None:
            return None
        tenant, user = found
        return (tenant.id, tenant.prefix, tenant.allow_auto_create_topics, tuple(sorted(
            (m, repr(c)) for m, c in user.credentials.items())))

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> Registry:
        """Build from the parsed config file's ``tenants`` array; RegistryError on any problem.

        ``tenant_defaults.quotas`` and ``tenant_defaults.limits`` apply to every tenant, key by key,
        unless the tenant sets that key itself.
        """
        tenants: dict[str, Tenant] = {}
        defaults = data.get("tenant_defaults", {})
        if not isinstance(defaults, dict) or set(defaults) - {"quotas", "limits"}:
            raise RegistryError("tenant_defaults: may hold only [tenant_defaults.quotas] and [tenant_defaults.limits]")
        for entry in data.get("tenants", []):
            tenant = _tenant_from_dict(entry, defaults)
            if tenant.id in tenants:
                raise RegistryError(f"tenant {tenant.id}: defined twice")
            tenants[tenant.id] = tenant
        return cls(tenants)

    def to_config(self) -> list[dict[str, Any]]:
        return [_tenant_to_dict(t) for t in self.tenants.values()]


def _scram_shapes(tenants: Iterable[Tenant]) -> dict[str, tuple[int, int]]:
    seen: dict[str, Counter[tuple[int, int]]] = {}
    for tenant in tenants:
        for user in tenant.users.values():
            for mechanism, credential in user.credentials.items():
                if isinstance(credential, ScramCredential):
                    seen.setdefault(mechanism, Counter())[(len(credential.salt), credential.iterations)] += 1
    return {mechanism: counts.most_common(1)[0][0] for mechanism, counts in seen.items()}


def _tenant_from_dict(entry: dict[str, Any], defaults: dict[str, Any]) -> Tenant:
    tenant_id = entry.get("id")
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        raise RegistryError(f"tenant {tenant_id!r}: an id is 1-63 lowercase letters, digits and '-', "
                            "starting with a letter or digit")
    _no_unknown_keys(f"tenant {tenant_id}", entry, TENANT_KEYS)
    prefix = entry.get("prefix", default_prefix(tenant_id))
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise RegistryError(f"tenant {tenant_id}: prefix {prefix!r} must be 1-64 of [a-zA-Z0-9._-], "
                            "starting with a letter or digit")
    users: dict[str, User] = {}
    for user_entry in entry.get("users", []):
        user = _user_from_dict(tenant_id, user_entry)
        if user.name in users:
            raise RegistryError(f"tenant {tenant_id}: user {user.name} defined twice")
        users[user.name] = user
    allow = entry.get("allow_auto_create_topics", False)
    if not isinstance(allow, bool):
        raise RegistryError(f"tenant {tenant_id}: allow_auto_create_topics must be true or false")
    quota_table = {**defaults.get("quotas", {}), **entry.get("quotas", {})}
    user_tables = quota_table.pop("users", {})
    try:
        quotas = QuotaSpec.from_dict(f"tenant {tenant_id} quotas", quota_table)
        user_quotas = {name: QuotaSpec.from_dict(f"tenant {tenant_id} quotas for user {name}", table)
                       for name, table in user_tables.items()}
        limits = Limits.from_dict(f"tenant {tenant_id} limits", {**defaults.get("limits", {}),
                                                                   **entry.get("limits", {})})
    except (QuotaError, LimitError) as exc:
        raise RegistryError(str(exc)) from None
    topic_limits = {k for k in limits.to_dict() if k != "max_groups"}
    if allow and topic_limits:
        raise RegistryError(f"tenant {tenant_id}: allow_auto_create_topics cannot be combined with topic limits "
                            f"({', '.join(sorted(topic_limits))}): a topic created by Metadata would bypass them")
    for name in user_quotas:
        if name not in users:
            raise RegistryError(f"tenant {tenant_id} quotas: user {name} is not a user of this tenant")
    authorization, admins, acls = _authorization_from_dict(tenant_id, entry)
    try:
        encryption = EncryptionPolicy.from_dict(f"tenant {tenant_id} encryption", entry.get("encryption", {}))
    except EncryptionPolicyError as exc:
        raise RegistryError(str(exc)) from None
    return Tenant(tenant_id, prefix, users, allow, quotas, user_quotas, limits, authorization, admins, acls,
                  encryption)


def _authorization_from_dict(tenant_id: str, entry: dict[str, Any]) -> tuple[str, frozenset[str], Acls]:
    mode = entry.get("authorization", "open")
    if mode not in AUTHORIZATION_MODES:
        raise RegistryError(f"tenant {tenant_id}: authorization must be one of {', '.join(AUTHORIZATION_MODES)}, "
                            f"not {mode!r}")
    admins = entry.get("admin_users", [])
    if not isinstance(admins, list) or not all(isinstance(a, str) and _USER.fullmatch(a) for a in admins):
        raise RegistryError(f"tenant {tenant_id}: admin_users is a list of user names")
    try:
        acls = Acls.from_config(entry.get("acls", []))
    except AclError as exc:
        raise RegistryError(f"tenant {tenant_id} acls: {exc}") from None
    return mode, frozenset(admins), acls


def _no_unknown_keys(where: str, entry: dict[str, Any], known: tuple[str, ...]) -> None:
    """A misspelt key would otherwise be ignored, and its setting silently left at the default."""
    for key in entry:
        if key not in known:
            guess = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {guess[0]!r}?" if guess else f"known: {', '.join(known)}"
            raise RegistryError(f"{where}: unknown key {key!r}; {hint}")


def _user_from_dict(tenant_id: str, entry: dict[str, Any]) -> User:
    name = entry.get("name")
    if not isinstance(name, str) or not _USER.fullmatch(name):
        raise RegistryError(f"tenant {tenant_id}: user name {name!r} must be 1-128 of [A-Za-z0-9._@-]")
    _no_unknown_keys(f"tenant {tenant_id} user {name}", entry, USER_KEYS)
    credentials: dict[str, Credential] = {}
    for mechanism, stored in entry.get("credentials", {}).items():
        if mechanism not in MECHANISMS:
            raise RegistryError(f"user {name}: unknown mechanism {mechanism!r} (use {', '.join(MECHANISMS)})")
        try:
            credentials[mechanism] = (PlainCredential.from_dict(stored) if mechanism == "PLAIN"
                                      else ScramCredential.from_dict(mechanism, stored))
        except (KeyError, ValueError, TypeError) as exc:
            raise RegistryError(f"user {name}: {mechanism} credential is malformed ({exc})") from None
    return User(name, credentials)


def _tenant_to_dict(tenant: Tenant) -> dict[str, Any]:
    out: dict[str, Any] = {"id": tenant.id, "prefix": tenant.prefix}
    if tenant.allow_auto_create_topics:
        out["allow_auto_create_topics"] = True
    quotas = tenant.quotas.to_dict()
    if tenant.user_quotas:
        quotas["users"] = {name: spec.to_dict() for name, spec in tenant.user_quotas.items()}
    if quotas:
        out["quotas"] = quotas
    if tenant.limits.to_dict():
        out["limits"] = tenant.limits.to_dict()
    if tenant.authorization != "open":
        out["authorization"] = tenant.authorization
    if tenant.admin_users:
        out["admin_users"] = sorted(tenant.admin_users)
    if tenant.acls.bindings:
        out["acls"] = tenant.acls.to_config()
    if tenant.encryption:
        out["encryption"] = tenant.encryption.to_dict()
    out["users"] = [{"name": u.name, "credentials": {m: c.to_dict() for m, c in u.credentials.items()}}
                    for u in tenant.users.values()]
    return out
