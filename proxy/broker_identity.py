"""The broker as a second line of defence: one broker user per tenant, allowed only the tenant's prefix.

With ``upstream_identity = "tenant"`` the proxy logs in to the brokers as the tenant's own broker user
rather than its service user, so a broker with an authorizer refuses cross-tenant access by itself,
even if a check in the proxy were wrong. The service user (a super user) provisions, through Kafka's
Admin API, for each tenant:

- a SCRAM-SHA-512 user ``tenantry-tenant-<id>`` whose password only the proxy can derive (from
  ``sasl_salt_secret``, so every replica derives the same one and nothing is stored);
- PREFIXED ACLs on the tenant's topics, groups and transactional ids (all operations), and
  IdempotentWrite on the cluster.

A removed tenant loses its ACLs and its user. ``auto`` (the default) uses tenant users when the
brokers have an authorizer (DescribeAcls answers something other than SECURITY_DISABLED).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from tenantry.protocol import ProtocolError
from tenantry.protocol.messages.alter_user_scram_credentials_request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from tenantry.protocol.messages.create_acls_request import AclCreation, CreateAclsRequest
from tenantry.protocol.messages.delete_acls_request import DeleteAclsFilter, DeleteAclsRequest
from tenantry.protocol.messages.describe_acls_request import DescribeAclsRequest
from tenantry.proxy.stage_context import BrokerLink
from tenantry.proxy.upstream import UpstreamError
from tenantry.tenants.credentials import SCRAM_ITERATIONS
from tenantry.tenants.registry import Tenant

USER_PREFIX = "tenantry-tenant-"
MECHANISM = "SCRAM-SHA-512"
log = logging.getLogger("tenantry.broker_identity")
SCRAM_SHA_512 = 2  # Kafka's ScramMechanism id
SECURITY_DISABLED = 54
# Kafka's AclResourceType, PatternType, AclOperation and AclPermissionType codes.
ANY, TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID = 1, 2, 3, 4, 5
LITERAL, PREFIXED = 3, 4
ALL, IDEMPOTENT_WRITE = 2, 12
ALLOW = 3


def broker_user(tenant_id: str) -> str:
    return USER_PREFIX + tenant_id


def broker_password(secret: bytes, tenant_id: str) -> str:
    return hmac.new(secret, f"broker user of {tenant_id}".encode(), hashlib.sha256).hexdigest()


async def authorizer_present(broker: BrokerLink) -> bool:
    answer = await broker.request(DescribeAclsRequest(
        resource_type_filter=ANY, resource_name_filter=None, pattern_type_filter=ANY, principal_filter=None,
        host_filter=None, operation=ANY, permission_type=ANY), 3)
    return int(answer.error_code) != SECURITY_DISABLED


async def provision(broker: BrokerLink, tenants: Iterable[Tenant], secret: bytes) -> None:
    """Create or refresh each tenant's broker user and ACLs; UpstreamError if the broker refuses."""
    tenants = list(tenants)
    if not tenants:
        return
    upsertions = []
    for tenant in tenants:
        salt = os.urandom(32)
        salted = hashlib.pbkdf2_hmac("sha512", broker_password(secret, tenant.id).encode(), salt, SCRAM_ITERATIONS)
        upsertions.append(ScramCredentialUpsertion(name=broker_user(tenant.id), mechanism=SCRAM_SHA_512,
                                                   iterations=SCRAM_ITERATIONS, salt=salt, salted_password=salted))
    users = await broker.request(AlterUserScramCredentialsRequest(upsertions=upsertions), 0)
    _check("SCRAM credentials", [(r.error_code, r.error_message) for r in users.results])
    acls = await broker.request(CreateAclsRequest(creations=[c for t in tenants for c in _acls(t)]), 3)
    _check("ACLs", [(r.error_code, r.error_message) for r in acls.results])


async def deprovision(broker: BrokerLink, tenant_ids: Iterable[str]) -> None:
    """Remove the broker users and ACLs of tenants that are gone."""
    tenant_ids = list(tenant_ids)
    if not tenant_ids:
        return
    filters = [DeleteAclsFilter(resource_type_filter=ANY, resource_name_filter=None, pattern_type_filter=ANY,
                                principal_filter=f"User:{broker_user(i)}", host_filter=None, operation=ANY,
                                permission_type=ANY) for i in tenant_ids]
    deleted = await broker.request(DeleteAclsRequest(filters=filters), 3)
    _check("ACL deletion", [(r.error_code, r.error_message) for r in deleted.filter_results])
    gone = await broker.request(AlterUserScramCredentialsRequest(deletions=[
        ScramCredentialDeletion(name=broker_user(i), mechanism=SCRAM_SHA_512) for i in tenant_ids]), 0)
    _check("SCRAM credential deletion", [(r.error_code, r.error_message) for r in gone.results
                                         if r.error_code != 91])  # 91: RESOURCE_NOT_FOUND, already gone


def _acls(tenant: Tenant) -> list[AclCreation]:
    principal = f"User:{broker_user(tenant.id)}"
    acls = [AclCreation(resource_type=kind, resource_name=tenant.prefix, resource_pattern_type=PREFIXED,
                        principal=principal, host="*", operation=ALL, permission_type=ALLOW)
            for kind in (TOPIC, GROUP, TRANSACTIONAL_ID)]
    acls.append(AclCreation(resource_type=CLUSTER, resource_name="kafka-cluster", resource_pattern_type=LITERAL,
                            principal=principal, host="*", operation=IDEMPOTENT_WRITE, permission_type=ALLOW))
    return acls


def _check(what: str, results: list[tuple[int, str | None]]) -> None:
    failed = [f"{code}: {message}" for code, message in results if code]
    if failed:
        raise UpstreamError(f"the broker refused the tenants' {what}: {'; '.join(failed)}")


class TenantIdentities:
    """Whether the proxy logs in as tenants' broker users, and keeping those users in step with the config."""

    def __init__(self, mode: str, secret: bytes) -> None:
        self.mode = mode
        self.secret = secret
        self.enabled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, service: BrokerLink, tenants: Iterable[Tenant]) -> None:
        """Decide (for auto) and provision every tenant, over a connection logged in as the service user."""
        if self.mode == "service":
            return
        if self.mode == "auto" and not await authorizer_present(service):
            log.info("upstream_identity auto: the brokers have no authorizer; tenants reach them as the service user")
            return
        await provision(service, tenants, self.secret)
        self.enabled = True
        log.info("tenants reach the brokers as their own broker users (%s<tenant id>), held to their prefixes "
                 "by PREFIXED ACLs", USER_PREFIX)

    def login_for(self, tenant_id: str | None) -> tuple[str, str, str] | None:
        if not self.enabled or not tenant_id:
            return None
        return MECHANISM, broker_user(tenant_id), broker_password(self.secret, tenant_id)

    def changed(self, service: Callable[[], Awaitable[Any]], old: Iterable[Tenant], new: Iterable[Tenant]) -> None:
        """After a reload: provision new and changed tenants, remove the users and ACLs of removed ones."""
        if not self.enabled:
            return
        before = {t.id: t.prefix for t in old}
        after = {t.id: t for t in new}
        added = [t for i, t in after.items() if before.get(i) != t.prefix]
        removed = [i for i, prefix in before.items() if i not in after or after[i].prefix != prefix]
        if added or removed:
            task = asyncio.get_running_loop().create_task(self._apply(service, added, removed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _apply(self, service: Callable[[], Awaitable[Any]], added: list[Tenant], removed: list[str]) -> None:
        try:
            conn = await service()
            try:
                await deprovision(conn, removed)
                await provision(conn, added, self.secret)
            finally:
                conn.close()
        except (UpstreamError, ProtocolError) as exc:
            log.error("could not update the tenants' broker users (added %s, removed %s): %s",
                      [t.id for t in added], removed, exc)
            return
        log.info("broker users: provisioned %s, removed %s", [t.id for t in added], removed)
