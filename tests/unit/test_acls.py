"""The tenant authorizer decides as Kafka's StandardAuthorizer does (allow.everyone.if.no.acl.found=false)."""

from __future__ import annotations

import pytest

from tenantry.tenants.acls import (
    AclBinding,
    AclError,
    AclFilter,
    Acls,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    authorized_operations,
)

T, G, C, X = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER, ResourceType.TRANSACTIONAL_ID
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
ALLOW, DENY = Permission.ALLOW, Permission.DENY
O = Operation


def acl(rt: ResourceType, name: str, op: Operation, permission: Permission = ALLOW, pattern: PatternType = LIT,
        principal: str = "User:bob", host: str = "*") -> AclBinding:
    return AclBinding(rt, name, pattern, principal, host, op, permission)


# (bindings, operation, resource type, name, allowed?) for user bob at 10.0.0.1
CASES = [
    pytest.param([], O.READ, T, "orders", False, id="no ACL means no access"),
    pytest.param([acl(T, "orders", O.READ)], O.READ, T, "orders", True, id="literal allow"),
    pytest.param([acl(T, "orders", O.READ)], O.READ, T, "orders2", False, id="literal is the whole name"),
    pytest.param([acl(T, "orders", O.READ)], O.WRITE, T, "orders", False, id="another operation"),
    pytest.param([acl(T, "orders", O.READ)], O.READ, G, "orders", False, id="another resource type"),
    pytest.param([acl(T, "*", O.READ)], O.READ, T, "anything", True, id="literal wildcard"),
    pytest.param([acl(T, "ord", O.READ, pattern=PRE)], O.READ, T, "orders", True, id="prefixed"),
    pytest.param([acl(T, "ord", O.READ, pattern=PRE)], O.READ, T, "or", False, id="prefixed: longer than the name"),
    pytest.param([acl(T, "*", O.READ, pattern=PRE)], O.READ, T, "orders", False, id="prefixed * is a literal star"),
    pytest.param([acl(T, "orders", O.ALL)], O.DELETE, T, "orders", True, id="ALL allows every operation"),
    pytest.param([acl(T, "orders", O.READ)], O.DESCRIBE, T, "orders", True, id="READ implies DESCRIBE"),
    pytest.param([acl(T, "orders", O.WRITE)], O.DESCRIBE, T, "orders", True, id="WRITE implies DESCRIBE"),
    pytest.param([acl(T, "orders", O.DELETE)], O.DESCRIBE, T, "orders", True, id="DELETE implies DESCRIBE"),
    pytest.param([acl(T, "orders", O.ALTER)], O.DESCRIBE, T, "orders", True, id="ALTER implies DESCRIBE"),
    pytest.param([acl(T, "orders", O.CREATE)], O.DESCRIBE, T, "orders", False, id="CREATE implies nothing"),
    pytest.param([acl(T, "orders", O.DESCRIBE)], O.READ, T, "orders", False, id="DESCRIBE does not imply READ"),
    pytest.param([acl(T, "orders", O.ALTER_CONFIGS)], O.DESCRIBE_CONFIGS, T, "orders", True,
                 id="ALTER_CONFIGS implies DESCRIBE_CONFIGS"),
    pytest.param([acl(T, "orders", O.READ), acl(T, "orders", O.READ, DENY)], O.READ, T, "orders", False,
                 id="DENY beats ALLOW"),
    pytest.param([acl(T, "*", O.ALL), acl(T, "secret", O.READ, DENY, PRE)], O.READ, T, "secret-pay", False,
                 id="a prefixed DENY beats a wildcard ALLOW"),
    pytest.param([acl(T, "orders", O.READ), acl(T, "orders", O.ALL, DENY)], O.READ, T, "orders", False,
                 id="DENY ALL denies READ"),
    pytest.param([acl(T, "orders", O.READ), acl(T, "orders", O.DESCRIBE, DENY)], O.READ, T, "orders", True,
                 id="a DENY of DESCRIBE does not deny READ"),
    pytest.param([acl(T, "orders", O.READ), acl(T, "orders", O.READ, DENY)], O.DESCRIBE, T, "orders", True,
                 id="a DENY of READ leaves the DESCRIBE it implied to other ALLOWs"),
    pytest.param([acl(T, "orders", O.READ, principal="User:alice")], O.READ, T, "orders", False,
                 id="another principal"),
    pytest.param([acl(T, "orders", O.READ, principal="User:*")], O.READ, T, "orders", True, id="User:*"),
    pytest.param([acl(T, "orders", O.READ, host="10.0.0.1")], O.READ, T, "orders", True, id="the client's host"),
    pytest.param([acl(T, "orders", O.READ, host="10.0.0.2")], O.READ, T, "orders", False, id="another host"),
    pytest.param([acl(T, "orders", O.READ), acl(T, "orders", O.READ, DENY, host="10.0.0.2")], O.READ, T, "orders",
                 True, id="a DENY for another host"),
    pytest.param([acl(C, "kafka-cluster", O.CREATE)], O.CREATE, C, "kafka-cluster", True, id="the cluster"),
]


@pytest.mark.parametrize(("bindings", "operation", "resource_type", "name", "allowed"), CASES)
def test_decisions(bindings, operation, resource_type, name, allowed):
    acls = Acls(bindings)
    assert acls.authorize("bob", "10.0.0.1", operation, resource_type, name) is allowed
    assert acls.authorize("bob", "10.0.0.1", operation, resource_type, name) is allowed  # cached, the same


def test_write_on_some_topic_is_found_unless_a_deny_covers_it():
    assert not Acls([]).authorize_any("bob", "h", O.WRITE, T)
    assert Acls([acl(T, "logs", O.WRITE, pattern=PRE)]).authorize_any("bob", "h", O.WRITE, T)
    assert not Acls([acl(T, "logs", O.WRITE, pattern=PRE), acl(T, "lo", O.WRITE, DENY, PRE)]).authorize_any(
        "bob", "h", O.WRITE, T)
    assert not Acls([acl(T, "logs", O.WRITE), acl(T, "*", O.ALL, DENY)]).authorize_any("bob", "h", O.WRITE, T)
    assert Acls([acl(T, "logs", O.WRITE), acl(T, "audit", O.WRITE, DENY)]).authorize_any("bob", "h", O.WRITE, T)


@pytest.mark.parametrize(("binding", "problem"), [
    (acl(ResourceType.USER, "x", O.ALTER), "not offered"),
    (acl(T, "orders", O.CLUSTER_ACTION), "does not apply"),
    (acl(T, "orders", O.IDEMPOTENT_WRITE), "does not apply"),
    (acl(C, "other", O.ALTER), "kafka-cluster"),
    (acl(T, "orders", O.READ, pattern=PatternType.MATCH), "LITERAL or PREFIXED"),
    (acl(T, "orders", O.READ, principal="Group:x"), "User:"),
    (acl(T, "orders", O.READ, principal="User:"), "User:"),
    (acl(T, "orders", O.READ, host="example.com"), "IP address"),
    (acl(T, "", O.READ), "name"),
    (acl(X, "tx", O.READ), "does not apply"),
])
def test_bindings_a_tenant_may_not_hold_are_refused(binding, problem):
    with pytest.raises(AclError, match=problem):
        binding.validate()


def test_filters_match_as_describe_and_delete_acls_do():
    a, b, c = acl(T, "orders", O.READ), acl(T, "ord", O.WRITE, pattern=PRE), acl(G, "g1", O.READ)
    acls = Acls([a, b, c])
    assert acls.matching(AclFilter()) == [a, b, c]
    assert acls.matching(AclFilter(resource_type=T)) == [a, b]
    assert acls.matching(AclFilter(resource_type=T, name="orders", pattern=PatternType.MATCH)) == [a, b]
    assert acls.matching(AclFilter(name="orders", pattern=LIT)) == [a]
    assert acls.matching(AclFilter(name="ord")) == [b]  # ANY pattern: exact names only
    assert acls.matching(AclFilter(operation=O.WRITE)) == [b]
    assert acls.matching(AclFilter(principal="User:alice")) == []


def test_bindings_round_trip_through_the_config_file_and_duplicates_collapse():
    a = acl(T, "orders", O.READ, host="10.0.0.1")
    acls = Acls.from_config([a.to_dict(), a.to_dict()])
    assert acls.bindings == (a,) and Acls.from_config(acls.to_config()) == acls
    assert acls.with_added([a]).bindings == (a,) and acls.without([a]).bindings == ()
    with pytest.raises(AclError, match="unknown ACL keys"):
        Acls.from_config([{**a.to_dict(), "colour": "red"}])
    with pytest.raises(AclError, match="unknown value"):
        Acls.from_config([{**a.to_dict(), "operation": "READ_EVERYTHING"}])


def test_authorized_operations_is_the_bit_field_kafka_answers():
    acls = Acls([acl(T, "orders", O.READ)])
    bits = authorized_operations(acls, "bob", "h", T, "orders")
    assert bits == (1 << O.READ) | (1 << O.DESCRIBE)
