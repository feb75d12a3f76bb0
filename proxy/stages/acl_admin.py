"""Stage: CreateAcls, DescribeAcls and DeleteAcls, answered by the proxy from the tenant's own ACLs.

A tenant's admin users may always manage its ACLs. In a tenant with ``authorization = "acls"`` other users
need what a broker asks for: ALTER on the cluster to create or delete, DESCRIBE to list. In an "open"
tenant they get SECURITY_DISABLED, as from a broker without an authorizer. Changes are written to the
config file (under its lock) and applied to every live connection at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenantry.protocol import decode
from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages import REQUESTS
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.create_acls_response import AclCreationResult, CreateAclsResponse
from tenantry.protocol.messages.delete_acls_response import DeleteAclsFilterResult, DeleteAclsResponse
from tenantry.protocol.messages.describe_acls_response import DescribeAclsResponse
from tenantry.protocol.schema import Message
from tenantry.proxy.authorization import acl_apis
from tenantry.proxy.authorization.acl_apis import AclStoreError
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, Outcome, Suspend
from tenantry.proxy.stages import acts_on
from tenantry.proxy.stages.authorization import client_host
from tenantry.tenants.acls import CLUSTER_NAME, Operation, ResourceType
from tenantry.tenants.registry import Tenant

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

ACL_APIS = frozenset({ApiKey.DESCRIBE_ACLS, ApiKey.CREATE_ACLS, ApiKey.DELETE_ACLS})


@acts_on(*ACL_APIS)
def answer(ex: Exchange, ctx: StageContext) -> Outcome | None:
    tenant = ctx.tenant()
    assert tenant is not None and ctx.auth is not None and ctx.auth.principal is not None
    user = ctx.auth.principal.name
    request: Any = decode(REQUESTS[ex.api_key], ex.body, ex.api_version)
    refused = _refusal(ctx, tenant, user, ex.api_key)
    if refused is not None:
        error, message = refused
        ctx.log.info("refused %s to user %s of tenant %s: %s", ctx.api_name(ex.api_key), user, tenant.id, message)
        ctx.meter.tenant.authorization_failures[(ctx.api_name(ex.api_key), ResourceType.CLUSTER.name)] += 1
        return Answer(_error_answer(ex.api_key, request, error, message))
    if ex.api_key == ApiKey.DESCRIBE_ACLS:
        return Answer(acl_apis.describe(tenant.acls, request))
    return Suspend(_change(ex, ctx, tenant, user, request))


def _refusal(ctx: StageContext, tenant: Tenant, user: str, api_key: int) -> tuple[int, str] | None:
    if user in tenant.admin_users:
        return None
    if tenant.authorization == "open":
        return ErrorCode.SECURITY_DISABLED, "this tenant's ACLs are managed by its admin users"
    operation = Operation.DESCRIBE if api_key == ApiKey.DESCRIBE_ACLS else Operation.ALTER
    if tenant.acls.authorize(user, client_host(ctx.peer), operation, ResourceType.CLUSTER, CLUSTER_NAME):
        return None
    return ErrorCode.CLUSTER_AUTHORIZATION_FAILED, f"{operation.name} on the cluster is needed"


async def _change(ex: Exchange, ctx: StageContext, tenant: Tenant, user: str, request: Any) -> Outcome | None:
    change = acl_apis.create if ex.api_key == ApiKey.CREATE_ACLS else acl_apis.delete
    try:
        response, before, after = await ctx.change_acls(tenant.id, lambda acls: change(acls, request))
    except AclStoreError as exc:
        ctx.log.error("cannot save the ACLs of tenant %s: %s", tenant.id, exc)
        return Answer(_error_answer(ex.api_key, request, ErrorCode.UNKNOWN_SERVER_ERROR, str(exc)))
    ctx.log.info("user %s changed the ACLs of tenant %s (%s): %d bindings before, %d now", user, tenant.id,
                 ctx.api_name(ex.api_key), before, after)
    return Answer(response)


def _error_answer(api_key: int, request: Any, error: int, message: str) -> Message:
    if api_key == ApiKey.CREATE_ACLS:
        return CreateAclsResponse(results=[AclCreationResult(error_code=error, error_message=message)
                                           for _ in request.creations])
    if api_key == ApiKey.DELETE_ACLS:
        return DeleteAclsResponse(filter_results=[DeleteAclsFilterResult(error_code=error, error_message=message)
                                                  for _ in request.filters])
    return DescribeAclsResponse(error_code=error, error_message=message)
