"""A tenant's ACLs and the decisions Kafka's StandardAuthorizer would make from them.

Rules, as on a private cluster (``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``):
a request is allowed when an ALLOW binding matches it and no DENY binding does (DENY wins); no matching
binding means no access. A binding matches on its principal (``User:<name>`` or ``User:*``), its host (an
address or ``*``), its resource (LITERAL: the same name, or ``*``; PREFIXED: a prefix of the name) and its
operation (the same one, or ALL). READ, WRITE, DELETE and ALTER imply DESCRIBE, and ALTER_CONFIGS implies
DESCRIBE_CONFIGS, for ALLOW only. The tenant's admin users are its super users.

Names are the tenant's own (without the hidden prefix): a tenant's bindings can only ever match its own
users' requests on its own resources, so no binding can reach outside the tenant.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


#: The one cluster a tenant sees, named as Kafka names every cluster resource.
CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
USER_PRINCIPAL = "User:"
#: What a tenant may write ACLs for: the operations Kafka's AclCommand accepts per resource type, less
#: CLUSTER_ACTION (broker-to-broker requests, never a tenant's).
OPERATIONS: dict[ResourceType, frozenset[Operation]] = {
    ResourceType.TOPIC: frozenset({Operation.ALL, Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE,
                                   Operation.ALTER, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS,
                                   Operation.ALTER_CONFIGS}),
    ResourceType.GROUP: frozenset({Operation.ALL, Operation.READ, Operation.DELETE, Operation.DESCRIBE,
                                   Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS}),
    ResourceType.TRANSACTIONAL_ID: frozenset({Operation.ALL, Operation.DESCRIBE, Operation.WRITE}),
    ResourceType.CLUSTER: frozenset({Operation.ALL, Operation.CREATE, Operation.ALTER, Operation.DESCRIBE,
                                     Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS,
                                     Operation.IDEMPOTENT_WRITE}),
}
#: An ALLOW of the key also allows these (Kafka's implied operations).
IMPLIES: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset({Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER}),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.ALTER_CONFIGS}),
}
_CACHE_LIMIT = 100_000
#: Longest resource name, principal or host kept (Kafka's own names are far shorter: topics 249).
MAX_FIELD = 1000


class AclError(ValueError):
    """A binding a tenant may not hold; the message says why (sent back to the client as INVALID_REQUEST)."""


@dataclass(frozen=True, slots=True)
class AclBinding:
    resource_type: ResourceType
    name: str
    pattern: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def validate(self) -> None:
        if self.resource_type not in OPERATIONS:
            raise AclError(f"resource type {self.resource_type.name} is not offered; use TOPIC, GROUP, "
                           "TRANSACTIONAL_ID or CLUSTER")
        if self.pattern not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise AclError(f"pattern type {self.pattern.name}: a binding is LITERAL or PREFIXED")
        if not self.name:
            raise AclError("a resource name is required")
        if max(len(self.name), len(self.principal), len(self.host)) > MAX_FIELD:
            raise AclError(f"a resource name, principal or host is at most {MAX_FIELD} characters")
        if self.resource_type == ResourceType.CLUSTER and (self.name, self.pattern) != (CLUSTER_NAME,
                                                                                       PatternType.LITERAL):
            raise AclError(f"the cluster resource is the LITERAL name {CLUSTER_NAME!r}")
        if self.operation not in OPERATIONS[self.resource_type]:
            raise AclError(f"operation {self.operation.name} does not apply to {self.resource_type.name}")
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            raise AclError(f"permission {self.permission.name}: use ALLOW or DENY")
        if not self.principal.startswith(USER_PRINCIPAL) or len(self.principal) == len(USER_PRINCIPAL):
            raise AclError(f"principal {self.principal!r}: use User:<name> or User:*")
        if self.host != WILDCARD:
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                raise AclError(f"host {self.host!r}: an IP address or *") from None

    def matches_resource(self, resource_type: ResourceType, name: str) -> bool:
        if resource_type != self.resource_type:
            return False
        if self.pattern == PatternType.PREFIXED:
            return name.startswith(self.name)
        return name == self.name or self.name == WILDCARD

    def to_dict(self) -> dict[str, str]:
        return {"resource_type": self.resource_type.name, "name": self.name, "pattern": self.pattern.name,
                "principal": self.principal, "host": self.host, "operation": self.operation.name,
                "permission": self.permission.name}

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> AclBinding:
        if not isinstance(entry, dict):
            raise AclError("an ACL is a table of resource_type, name, pattern, principal, host, operation and "
                           "permission")
        unknown = set(entry) - {"resource_type", "name", "pattern", "principal", "host", "operation", "permission"}
        if unknown:
            raise AclError(f"unknown ACL keys: {', '.join(sorted(unknown))}")
        try:
            binding = cls(ResourceType[str(entry["resource_type"]).upper()], str(entry["name"]),
                          PatternType[str(entry.get("pattern", "LITERAL")).upper()], str(entry["principal"]),
                          str(entry.get("host", WILDCARD)), Operation[str(entry["operation"]).upper()],
                          Permission[str(entry.get("permission", "ALLOW")).upper()])
        except KeyError as exc:
            raise AclError(f"ACL {entry}: missing or unknown value {exc}") from None
        binding.validate()
        return binding


@dataclass(frozen=True, slots=True)
class AclFilter:
    """What DescribeAcls and DeleteAcls name: None (or ANY) matches everything in that place."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    def matches(self, binding: AclBinding) -> bool:
        return (self.resource_type in (ResourceType.ANY, binding.resource_type)
                and self._matches_pattern(binding)
                and self.principal in (None, binding.principal)
                and self.host in (None, binding.host)
                and self.operation in (Operation.ANY, binding.operation)
                and self.permission in (Permission.ANY, binding.permission))

    def _matches_pattern(self, binding: AclBinding) -> bool:
        if self.pattern == PatternType.MATCH:  # every binding that would apply to this name
            return self.name is None or binding.matches_resource(binding.resource_type, self.name)
        if self.pattern not in (PatternType.ANY, binding.pattern):
            return False
        return self.name in (None, binding.name)


class Acls:
    """A tenant's bindings and its authorizer's decisions, cached until the bindings change (a change makes
    a new object: a reload or an ACL API call replaces the tenant's)."""

    __slots__ = ("_cache", "bindings")

    def __init__(self, bindings: Iterable[AclBinding] = ()) -> None:
        self.bindings: tuple[AclBinding, ...] = tuple(dict.fromkeys(bindings))  # no duplicates, order kept
        self._cache: dict[tuple[str, str, Operation, ResourceType, str], bool] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Acls) and set(self.bindings) == set(other.bindings)

    def __hash__(self) -> int:
        return hash(frozenset(self.bindings))

    def __repr__(self) -> str:
        return f"Acls({len(self.bindings)} bindings)"

    def authorize(self, user: str, host: str, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        key = (user, host, operation, resource_type, name)
        verdict = self._cache.get(key)
        if verdict is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            verdict = self._cache[key] = self._decide(user, host, operation, resource_type, name)
        return verdict

    def _decide(self, user: str, host: str, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        allowed = False
        implied_by = IMPLIES.get(operation, frozenset())
        for b in self._applying(user, host):
            if not b.matches_resource(resource_type, name):
                continue
            if b.permission == Permission.DENY:
                if b.operation in (operation, Operation.ALL):
                    return False
            elif b.operation in (operation, Operation.ALL) or b.operation in implied_by:
                allowed = True
        return allowed

    def authorize_any(self, user: str, host: str, operation: Operation, resource_type: ResourceType) -> bool:
        """Kafka's authorizeByResourceType: is `operation` allowed on some resource of the type (an ALLOW not
        wholly covered by a DENY)? InitProducerId without a transactional id asks this of WRITE on topics."""
        mine = [b for b in self._applying(user, host) if b.resource_type == resource_type
                and b.operation in (operation, Operation.ALL)]
        denies = [b for b in mine if b.permission == Permission.DENY]
        if any(d.pattern == PatternType.LITERAL and d.name == WILDCARD for d in denies):
            return False
        for allow in (b for b in mine if b.permission == Permission.ALLOW):
            covered = any((d.pattern == PatternType.PREFIXED and allow.name.startswith(d.name))
                          or (d.pattern == allow.pattern and d.name == allow.name) for d in denies)
            if not covered:
                return True
        return False

    def _applying(self, user: str, host: str) -> Iterable[AclBinding]:
        principal = USER_PRINCIPAL + user
        wildcard = USER_PRINCIPAL + WILDCARD
        return (b for b in self.bindings if b.principal in (principal, wildcard) and b.host in (host, WILDCARD))

    def matching(self, acl_filter: AclFilter) -> list[AclBinding]:
        return [b for b in self.bindings if acl_filter.matches(b)]

    def with_added(self, bindings: Sequence[AclBinding]) -> Acls:
        return Acls((*self.bindings, *bindings))

    def without(self, bindings: Iterable[AclBinding]) -> Acls:
        gone = set(bindings)
        return Acls(b for b in self.bindings if b not in gone)

    def to_config(self) -> list[dict[str, str]]:
        return [b.to_dict() for b in self.bindings]

    @classmethod
    def from_config(cls, entries: object) -> Acls:
        if not isinstance(entries, list):
            raise AclError("acls is a list of tables")
        return cls(AclBinding.from_dict(e) for e in entries)


def authorized_operations(acls: Acls, user: str, host: str, resource_type: ResourceType, name: str) -> int:
    """The bit field Metadata and DescribeGroups answer for include_*_authorized_operations."""
    bits = 0
    for operation in OPERATIONS.get(resource_type, frozenset()) - {Operation.ALL}:
        if acls.authorize(user, host, operation, resource_type, name):
            bits |= 1 << operation
    return bits
