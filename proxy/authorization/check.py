"""One request's authorization questions, asked of the tenant's ACLs and remembered for the log and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from tenantry.tenants.acls import Acls, Operation, ResourceType
from tenantry.tenants.registry import Tenant

_REMEMBERED = 10_000  # names per operation a connection remembers as allowed


@dataclass(slots=True)
class Check:
    """Asks whether `user` at `host` may do something; the denials are kept, to be logged and counted."""

    acls: Acls
    user: str
    host: str
    denied: list[tuple[Operation, ResourceType, str]] = field(default_factory=list)

    def __call__(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        if self.acls.authorize(self.user, self.host, operation, resource_type, name):
            return True
        self.denied.append((operation, resource_type, name))
        return False

    def quietly(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        """Ask without counting a "no" as a denial (a listing filtered, one of two ways to be allowed)."""
        return self.acls.authorize(self.user, self.host, operation, resource_type, name)

    def any_of_type(self, operation: Operation, resource_type: ResourceType) -> bool:
        return self.acls.authorize_any(self.user, self.host, operation, resource_type)


class DenialLog:
    """Decides which denials are logged: each (user, API, first refused resource) once a minute at most.

    A client refused a topic retries, some of them hundreds of times a second; the log must still say who
    was refused what without becoming the bottleneck (the metric counts every one)."""

    def __init__(self, interval: float = 60.0, limit: int = 10_000) -> None:
        self.interval, self.limit = interval, limit
        self._next: dict[tuple[object, ...], float] = {}

    def due(self, key: tuple[object, ...], now: float) -> bool:
        if self._next.get(key, 0.0) > now:
            return False
        if len(self._next) >= self.limit:
            self._next.clear()
        self._next[key] = now + self.interval
        return True


class ConnectionAcls:
    """One connection's user as one version of its tenant's ACLs sees it: whether it is checked at all, and
    the names it was allowed, per operation and resource type, so a producer's next request on the same
    topic costs a set look-up. A new version of the ACLs (a change or a reload makes a new object) makes a
    new view."""

    __slots__ = ("acls", "checked", "host", "topics", "user")

    def __init__(self, tenant: Tenant, user: str, host: str) -> None:
        self.acls, self.user, self.host = tenant.acls, user, host
        self.checked = tenant.checks_acls_of(user)
        #: Topic names already allowed, by operation (sets the caller may test, never change).
        self.topics: dict[Operation, set[str]] = {Operation.WRITE: set(), Operation.READ: set()}

    def allows(self, operation: Operation, resource_type: ResourceType, name: str) -> bool:
        if not self.acls.authorize(self.user, self.host, operation, resource_type, name):
            return False
        names = self.topics.get(operation) if resource_type == ResourceType.TOPIC else None
        if names is not None and len(names) < _REMEMBERED:
            names.add(name)
        return True
