"""Tenants' broker users: derived passwords, the ACLs they get, and reloads (fake broker link, no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.alter_user_scram_credentials_request import AlterUserScramCredentialsRequest
from tenantry.protocol.messages.create_acls_request import CreateAclsRequest
from tenantry.protocol.messages.delete_acls_request import DeleteAclsRequest
from tenantry.protocol.messages.describe_acls_response import DescribeAclsResponse
from tenantry.protocol.schema import Message
from tenantry.proxy.broker_identity import TenantIdentities, broker_password, broker_user
from tenantry.tenants.registry import Tenant


class Link:
    def __init__(self, security_disabled: bool = False) -> None:
        self.asked: list[Message] = []
        self.table: dict[int, Any] = {}
        self.security_disabled = security_disabled

    async def request(self, request: Message, version: int) -> Any:
        self.asked.append(request)
        if request.API_KEY == 29:
            return DescribeAclsResponse(error_code=54 if self.security_disabled else 0)
        return RESPONSES[request.API_KEY]()

    def close(self) -> None: ...


ACME, GLOBEX = Tenant("acme", "acme."), Tenant("globex", "gx-1.")


def test_a_tenants_password_is_the_same_for_every_replica_and_differs_by_tenant_and_secret():
    assert broker_password(b"s", "acme") == broker_password(b"s", "acme")
    assert broker_password(b"s", "acme") != broker_password(b"s", "globex")
    assert broker_password(b"s", "acme") != broker_password(b"t", "acme")
    assert broker_user("acme") == "tenantry-tenant-acme"


def test_each_tenant_gets_prefixed_acls_on_its_own_names_only():
    link = Link()
    identities = TenantIdentities("tenant", b"s")
    asyncio.run(identities.start(link, [ACME, GLOBEX]))
    assert identities.enabled
    users = next(r for r in link.asked if isinstance(r, AlterUserScramCredentialsRequest))
    assert [u.name for u in users.upsertions] == ["tenantry-tenant-acme", "tenantry-tenant-globex"]
    assert all(u.iterations >= 4096 and len(u.salt) == 32 for u in users.upsertions)
    acls = next(r for r in link.asked if isinstance(r, CreateAclsRequest)).creations
    for principal, prefix in (("User:tenantry-tenant-acme", "acme."), ("User:tenantry-tenant-globex", "gx-1.")):
        mine = [(a.resource_type, a.resource_name, a.resource_pattern_type) for a in acls if a.principal == principal]
        assert mine == [(2, prefix, 4), (3, prefix, 4), (5, prefix, 4), (4, "kafka-cluster", 3)]
    assert identities.login_for("acme") == ("SCRAM-SHA-512", "tenantry-tenant-acme", broker_password(b"s", "acme"))


def test_auto_uses_the_service_user_when_the_brokers_have_no_authorizer():
    identities = TenantIdentities("auto", b"s")
    asyncio.run(identities.start(Link(security_disabled=True), [ACME]))
    assert not identities.enabled and identities.login_for("acme") is None


async def test_a_reload_provisions_new_tenants_and_removes_gone_ones():
    link = Link()
    identities = TenantIdentities("tenant", b"s")
    await identities.start(link, [ACME, GLOBEX])
    link.asked.clear()

    async def service() -> Link:
        return link
    identities.changed(service, [ACME, GLOBEX], [ACME, Tenant("initech", "in.")])
    await asyncio.sleep(0.05)
    deleted = next(r for r in link.asked if isinstance(r, DeleteAclsRequest))
    assert [f.principal_filter for f in deleted.filters] == ["User:tenantry-tenant-globex"]
    added = next(r for r in link.asked if isinstance(r, AlterUserScramCredentialsRequest) and r.upsertions)
    assert [u.name for u in added.upsertions] == ["tenantry-tenant-initech"]
