"""Cluster-wide listings a tenant reads through the proxy show its own resources only, by its own names."""

from __future__ import annotations

from tenantry.protocol.messages.describe_client_quotas_request import DescribeClientQuotasRequest
from tenantry.protocol.messages.list_config_resources_request import ListConfigResourcesRequest

from .conftest import client_config, unique
from .rawclient import call
from .test_hostile_tenant import login
from .test_tenant_isolation import consume, create, produce

TOPIC, GROUP = 2, 32


def test_list_config_resources_lists_the_tenants_topics_and_groups_only(tenant_proxy):
    acme, globex = client_config(tenant_proxy, "alice"), client_config(tenant_proxy, "bob")
    topic, group, foreign = unique("lcr"), unique("lcrg"), unique("lcrx")
    create(acme, topic)
    create(globex, foreign)
    produce(acme, topic, [b"x"])
    consume(acme, topic, group, 1)
    with login(tenant_proxy, "alicia") as sock:
        listed = call(sock, ListConfigResourcesRequest(resource_types=[]), 1, corr=3)
        only_topics = call(sock, ListConfigResourcesRequest(resource_types=[TOPIC, 4]), 1, corr=4)
    resources = {(r.resource_name, r.resource_type) for r in listed.config_resources}
    assert listed.error_code == 0
    assert {(topic, TOPIC), (group, GROUP)} <= resources
    assert not any(name.startswith(("acme.", "globex.")) or name == foreign for name, _ in resources)
    assert {kind for _, kind in ((r.resource_name, r.resource_type) for r in only_topics.config_resources)} == {TOPIC}


def test_describe_client_quotas_is_answered_for_the_tenant_alone(tenant_proxy):
    with login(tenant_proxy, "alicia") as sock:
        answer = call(sock, DescribeClientQuotasRequest(components=[], strict=False), 1, corr=3)
    assert answer.error_code == 0
    # The session's tenants have no quotas: nothing to show, and never the broker's or another tenant's.
    assert answer.entries == []
