"""CreateAcls, DescribeAcls and DeleteAcls, answered from a tenant's own ACLs (never the cluster's).

Bindings name the tenant's users and resources as the tenant sees them; they are kept in the tenant's
entry of the config file, so they survive restarts and reloads like every other tenant setting.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages.create_acls_request import CreateAclsRequest
from tenantry.protocol.messages.create_acls_response import AclCreationResult, CreateAclsResponse
from tenantry.protocol.messages.delete_acls_request import DeleteAclsRequest
from tenantry.protocol.messages.delete_acls_response import (
    DeleteAclsFilterResult,
    DeleteAclsMatchingAcl,
    DeleteAclsResponse,
)
from tenantry.protocol.messages.describe_acls_request import DescribeAclsRequest
from tenantry.protocol.messages.describe_acls_response import (
    AclDescription,
    DescribeAclsResource,
    DescribeAclsResponse,
)
from tenantry.tenants.acls import (
    AclBinding,
    AclError,
    AclFilter,
    Acls,
    Operation,
    PatternType,
    Permission,
    ResourceType,
)

MAX_BINDINGS = 10_000


class AclStoreError(RuntimeError):
    """The ACLs cannot be saved (no config file, or it cannot be written); the message says why."""


def _enum(kind: type[Any], value: int, what: str) -> Any:
    try:
        member = kind(value)
    except ValueError:
        raise AclError(f"unknown {what} {value}") from None
    if member.name == "UNKNOWN":
        raise AclError(f"{what} UNKNOWN is not allowed")
    return member


def binding_of(c: Any) -> AclBinding:
    binding = AclBinding(_enum(ResourceType, c.resource_type, "resource type"), c.resource_name,
                         _enum(PatternType, c.resource_pattern_type, "pattern type"), c.principal, c.host,
                         _enum(Operation, c.operation, "operation"), _enum(Permission, c.permission_type, "permission"))
    binding.validate()
    return binding


def filter_of(resource_type: int, name: str | None, pattern: int, principal: str | None, host: str | None,
              operation: int, permission: int) -> AclFilter:
    return AclFilter(_enum(ResourceType, resource_type, "resource type"), name,
                     _enum(PatternType, pattern, "pattern type"), principal, host,
                     _enum(Operation, operation, "operation"), _enum(Permission, permission, "permission"))


def create(acls: Acls, m: CreateAclsRequest) -> tuple[Acls, CreateAclsResponse]:
    """Each creation is checked alone and gets its own result, as a broker answers them. A tenant holds at
    most MAX_BINDINGS: they live in the operator's config file, which a tenant must not be able to grow
    without end."""
    added: dict[AclBinding, None] = {}
    results = []
    for c in m.creations:
        try:
            binding = binding_of(c)
        except AclError as exc:
            results.append(AclCreationResult(error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc)))
            continue
        if binding not in added and binding not in acls.bindings and len(acls.bindings) + len(added) >= MAX_BINDINGS:
            results.append(AclCreationResult(error_code=ErrorCode.POLICY_VIOLATION,
                                              error_message=f"a tenant holds at most {MAX_BINDINGS} ACLs"))
            continue
        added[binding] = None
        results.append(AclCreationResult(error_code=ErrorCode.NONE))
    return acls.with_added(list(added)), CreateAclsResponse(results=results)


def describe(acls: Acls, m: DescribeAclsRequest) -> DescribeAclsResponse:
    try:
        acl_filter = filter_of(m.resource_type_filter, m.resource_name_filter, m.pattern_type_filter,
                               m.principal_filter, m.host_filter, m.operation, m.permission_type)
    except AclError as exc:
        return DescribeAclsResponse(error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc))
    return DescribeAclsResponse(resources=_by_resource(acls.matching(acl_filter)))


def _by_resource(bindings: Iterable[AclBinding]) -> list[DescribeAclsResource]:
    resources: dict[tuple[ResourceType, str, PatternType], list[AclDescription]] = {}
    for b in bindings:
        resources.setdefault((b.resource_type, b.name, b.pattern), []).append(
            AclDescription(principal=b.principal, host=b.host, operation=b.operation, permission_type=b.permission))
    return [DescribeAclsResource(resource_type=t, resource_name=n, pattern_type=p, acls=a)
            for (t, n, p), a in resources.items()]


def delete(acls: Acls, m: DeleteAclsRequest) -> tuple[Acls, DeleteAclsResponse]:
    results, gone = [], []
    for f in m.filters:
        try:
            acl_filter = filter_of(f.resource_type_filter, f.resource_name_filter, f.pattern_type_filter,
                                   f.principal_filter, f.host_filter, f.operation, f.permission_type)
        except AclError as exc:
            results.append(DeleteAclsFilterResult(error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc)))
            continue
        matched = acls.matching(acl_filter)
        gone += matched
        results.append(DeleteAclsFilterResult(matching_acls=[
            DeleteAclsMatchingAcl(resource_type=b.resource_type, resource_name=b.name, pattern_type=b.pattern,
                                  principal=b.principal, host=b.host, operation=b.operation,
                                  permission_type=b.permission) for b in matched]))
    return acls.without(gone), DeleteAclsResponse(filter_results=results)
