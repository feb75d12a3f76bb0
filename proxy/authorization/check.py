"""One request's authorization questions, asked of the tenant's ACLs and remembered for the log and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from tenantry.tenants.acls import Acls, Operation, ResourceType


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
