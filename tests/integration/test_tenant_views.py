"""Cluster-wide listings a tenant reads through the proxy show its own resources only, by its own names."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from tenantry.protocol.messages.describe_client_quotas_request import DescribeClientQuotasRequest
from tenantry.protocol.messages.list_config_resources_request import ListConfigResourcesRequest

from .conftest import client_config, unique
from .rawclient import call
from .test_hostile_tenant import login
from .test_tenant_isolation import consume, create, produce

TOPIC, GROUP = 2, 32


def test_list_config_resources_lists_the_tenants_topics_and_groups_only(tenant_proxy, kafka):
    acme, globex = client_config(tenant_proxy, "alice"), client_config(tenant_proxy, "bob")
    topic, group, foreign, foreign_group = unique("lcr"), unique("lcrg"), unique("lcrx"), unique("lcrxg")
    create(acme, topic)
    create(globex, foreign)
    produce(acme, topic, [b"x"])
    produce(globex, foreign, [b"y"])
    consume(acme, topic, group, 1)
    consume(globex, foreign, foreign_group, 1)
    with login(tenant_proxy, "alicia") as sock:
        listed = call(sock, ListConfigResourcesRequest(resource_types=[]), 1, corr=3)
        only_topics = call(sock, ListConfigResourcesRequest(resource_types=[TOPIC, 4]), 1, corr=4)
    on_broker = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics
    assert listed.error_code == 0
    # Exactly the tenant's topics, as it names them (a tenant may name a topic "globex.x": it is acme.globex.x).
    topics = {r.resource_name for r in listed.config_resources if r.resource_type == TOPIC}
    assert topics == {name[len("acme."):] for name in on_broker if name.startswith("acme.")}
    groups = {r.resource_name for r in listed.config_resources if r.resource_type == GROUP}
    assert group in groups and foreign_group not in groups and f"globex.{foreign_group}" not in groups
    assert {r.resource_type for r in only_topics.config_resources} == {TOPIC}


def test_describe_client_quotas_is_answered_for_the_tenant_alone(tenant_proxy):
    with login(tenant_proxy, "alicia") as sock:
        answer = call(sock, DescribeClientQuotasRequest(components=[], strict=False), 1, corr=3)
    assert answer.error_code == 0
    # The session's tenants have no quotas: nothing to show, and never the broker's or another tenant's.
    assert answer.entries == []
