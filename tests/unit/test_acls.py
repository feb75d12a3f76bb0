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
Op = Operation


def acl(rt: ResourceType, name: str, op: Operation, permission: Permission = ALLOW, pattern: PatternType = LIT,
        principal: str = "User:bob", host: str = "*") -> AclBinding:
    return AclBinding(rt, name, pattern, principal, host, op, permission)


# (bindings, operation, resource type, name, allowed?) for user bob at 10.0.0.1
CASES = [
    pytest.param([], Op.READ, T, "orders", False, id="no ACL means no access"),
    pytest.param([acl(T, "orders", Op.READ)], Op.READ, T, "orders", True, id="literal allow"),
    pytest.param([acl(T, "orders", Op.READ)], Op.READ, T, "orders2", False, id="literal is the whole name"),
    pytest.param([acl(T, "orders", Op.READ)], Op.WRITE, T, "orders", False, id="another operation"),
    pytest.param([acl(T, "orders", Op.READ)], Op.READ, G, "orders", False, id="another resource type"),
    pytest.param([acl(T, "*", Op.READ)], Op.READ, T, "anything", True, id="literal wildcard"),
    pytest.param([acl(T, "ord", Op.READ, pattern=PRE)], Op.READ, T, "orders", True, id="prefixed"),
    pytest.param([acl(T, "ord", Op.READ, pattern=PRE)], Op.READ, T, "or", False, id="prefixed: longer than the name"),
    pytest.param([acl(T, "*", Op.READ, pattern=PRE)], Op.READ, T, "orders", False, id="prefixed * is a literal star"),
    pytest.param([acl(T, "orders", Op.ALL)], Op.DELETE, T, "orders", True, id="ALL allows every operation"),
    pytest.param([acl(T, "orders", Op.READ)], Op.DESCRIBE, T, "orders", True, id="READ implies DESCRIBE"),
    pytest.param([acl(T, "orders", Op.WRITE)], Op.DESCRIBE, T, "orders", True, id="WRITE implies DESCRIBE"),
    pytest.param([acl(T, "orders", Op.DELETE)], Op.DESCRIBE, T, "orders", True, id="DELETE implies DESCRIBE"),
    pytest.param([acl(T, "orders", Op.ALTER)], Op.DESCRIBE, T, "orders", True, id="ALTER implies DESCRIBE"),
    pytest.param([acl(T, "orders", Op.CREATE)], Op.DESCRIBE, T, "orders", False, id="CREATE implies nothing"),
    pytest.param([acl(T, "orders", Op.DESCRIBE)], Op.READ, T, "orders", False, id="DESCRIBE does not imply READ"),
    pytest.param([acl(T, "orders", Op.ALTER_CONFIGS)], Op.DESCRIBE_CONFIGS, T, "orders", True,
                 id="ALTER_CONFIGS implies DESCRIBE_CONFIGS"),
    pytest.param([acl(T, "orders", Op.READ), acl(T, "orders", Op.READ, DENY)], Op.READ, T, "orders", False,
                 id="DENY beats ALLOW"),
    pytest.param([acl(T, "*", Op.ALL), acl(T, "secret", Op.READ, DENY, PRE)], Op.READ, T, "secret-pay", False,
                 id="a prefixed DENY beats a wildcard ALLOW"),
    pytest.param([acl(T, "orders", Op.READ), acl(T, "orders", Op.ALL, DENY)], Op.READ, T, "orders", False,
                 id="DENY ALL denies READ"),
    pytest.param([acl(T, "orders", Op.READ), acl(T, "orders", Op.DESCRIBE, DENY)], Op.READ, T, "orders", True,
                 id="a DENY of DESCRIBE does not deny READ"),
    pytest.param([acl(T, "orders", Op.READ), acl(T, "orders", Op.READ, DENY)], Op.DESCRIBE, T, "orders", True,
                 id="a DENY of READ leaves the DESCRIBE it implied to other ALLOWs"),
    pytest.param([acl(T, "orders", Op.READ, principal="User:alice")], Op.READ, T, "orders", False,
                 id="another principal"),
    pytest.param([acl(T, "orders", Op.READ, principal="User:*")], Op.READ, T, "orders", True, id="User:*"),
    pytest.param([acl(T, "orders", Op.READ, host="10.0.0.1")], Op.READ, T, "orders", True, id="the client's host"),
    pytest.param([acl(T, "orders", Op.READ, host="10.0.0.2")], Op.READ, T, "orders", False, id="another host"),
    pytest.param([acl(T, "orders", Op.READ), acl(T, "orders", Op.READ, DENY, host="10.0.0.2")], Op.READ, T, "orders",
                 True, id="a DENY for another host"),
    pytest.param([acl(C, "kafka-cluster", Op.CREATE)], Op.CREATE, C, "kafka-cluster", True, id="the cluster"),
]


@pytest.mark.parametrize(("bindings", "operation", "resource_type", "name", "allowed"), CASES)
def test_decisions(bindings, operation, resource_type, name, allowed):
    acls = Acls(bindings)
    assert acls.authorize("bob", "10.0.0.1", operation, resource_type, name) is allowed
    assert acls.authorize("bob", "10.0.0.1", operation, resource_type, name) is allowed  # cached, the same


def test_write_on_some_topic_is_found_unless_a_deny_covers_it():
    assert not Acls([]).authorize_any("bob", "h", Op.WRITE, T)
    assert Acls([acl(T, "logs", Op.WRITE, pattern=PRE)]).authorize_any("bob", "h", Op.WRITE, T)
    assert not Acls([acl(T, "logs", Op.WRITE, pattern=PRE), acl(T, "lo", Op.WRITE, DENY, PRE)]).authorize_any(
        "bob", "h", Op.WRITE, T)
    assert not Acls([acl(T, "logs", Op.WRITE), acl(T, "*", Op.ALL, DENY)]).authorize_any("bob", "h", Op.WRITE, T)
    assert Acls([acl(T, "logs", Op.WRITE), acl(T, "audit", Op.WRITE, DENY)]).authorize_any("bob", "h", Op.WRITE, T)


@pytest.mark.parametrize(("binding", "problem"), [
    (acl(ResourceType.USER, "x", Op.ALTER), "not offered"),
    (acl(T, "orders", Op.CLUSTER_ACTION), "does not apply"),
    (acl(T, "orders", Op.IDEMPOTENT_WRITE), "does not apply"),
    (acl(C, "other", Op.ALTER), "kafka-cluster"),
    (acl(T, "orders", Op.READ, pattern=PatternType.MATCH), "LITERAL or PREFIXED"),
    (acl(T, "orders", Op.READ, principal="Group:x"), "User:"),
    (acl(T, "orders", Op.READ, principal="User:"), "User:"),
    (acl(T, "orders", Op.READ, host="example.com"), "IP address"),
    (acl(T, "", Op.READ), "name"),
    (acl(X, "tx", Op.READ), "does not apply"),
    (acl(T, "x" * 1001, Op.READ), "at most 1000"),
    (acl(T, "x", Op.READ, principal="User:" + "u" * 1000), "at most 1000"),
])
def test_bindings_a_tenant_may_not_hold_are_refused(binding, problem):
    with pytest.raises(AclError, match=problem):
        binding.validate()


def test_filters_match_as_describe_and_delete_acls_do():
    a, b, c = acl(T, "orders", Op.READ), acl(T, "ord", Op.WRITE, pattern=PRE), acl(G, "g1", Op.READ)
    acls = Acls([a, b, c])
    assert acls.matching(AclFilter()) == [a, b, c]
    assert acls.matching(AclFilter(resource_type=T)) == [a, b]
    assert acls.matching(AclFilter(resource_type=T, name="orders", pattern=PatternType.MATCH)) == [a, b]
    assert acls.matching(AclFilter(name="orders", pattern=LIT)) == [a]
    assert acls.matching(AclFilter(name="ord")) == [b]  # ANY pattern: exact names only
    assert acls.matching(AclFilter(operation=Op.WRITE)) == [b]
    assert acls.matching(AclFilter(principal="User:alice")) == []


def test_bindings_round_trip_through_the_config_file_and_duplicates_collapse():
    a = acl(T, "orders", Op.READ, host="10.0.0.1")
    acls = Acls.from_config([a.to_dict(), a.to_dict()])
    assert acls.bindings == (a,) and Acls.from_config(acls.to_config()) == acls
    assert acls.with_added([a]).bindings == (a,) and acls.without([a]).bindings == ()
    with pytest.raises(AclError, match="unknown ACL keys"):
        Acls.from_config([{**a.to_dict(), "colour": "red"}])
    with pytest.raises(AclError, match="unknown value"):
        Acls.from_config([{**a.to_dict(), "operation": "READ_EVERYTHING"}])


def test_authorized_operations_is_the_bit_field_kafka_answers():
    acls = Acls([acl(T, "orders", Op.READ)])
    bits = authorized_operations(acls, "bob", "h", T, "orders")
    assert bits == (1 << Op.READ) | (1 << Op.DESCRIBE)
