"""Regex subscriptions through the proxy select the same topics, inside the tenant, as on a private cluster.

librdkafka sends its subscription to the broker as one anchored regex, such as `(^orders-.*)|(^audit)`,
under the KIP-848 consumer protocol; the classic protocol matches on the client against Metadata.
"""

from __future__ import annotations

import pytest

from .conftest import GROUP_PROTOCOLS, client_config, unique
from .test_tenant_isolation import consume, create, produce


@pytest.mark.parametrize("protocol", GROUP_PROTOCOLS)
def test_an_anchored_regex_subscription_consumes_the_tenants_topics_and_no_one_elses(tenant_proxy, protocol):
    acme, globex = client_config(tenant_proxy, "alice"), client_config(tenant_proxy, "bob")
    stem = unique("rx")
    create(acme, f"{stem}-a", f"{stem}-b")
    create(globex, f"{stem}-a")
    produce(acme, f"{stem}-a", [b"acme-a"])
    produce(acme, f"{stem}-b", [b"acme-b"])
    produce(globex, f"{stem}-a", [b"globex-a"])
    got = consume(acme, f"^{stem}-(a|b)$", unique("g"), 2, **{"group.protocol": protocol})
    assert sorted(got) == [b"acme-a", b"acme-b"]


@pytest.mark.parametrize("protocol", GROUP_PROTOCOLS)
def test_alternated_anchored_regexes_as_librdkafka_sends_them(tenant_proxy, protocol):
    acme = client_config(tenant_proxy, "alice")
    stem = unique("alt")
    create(acme, f"{stem}-exists")
    produce(acme, f"{stem}-exists", [b"found"])
    got = consume(acme, [f"^{stem}-notexists", f"^{stem}-exists"], unique("g"), 1, **{"group.protocol": protocol})
    assert got == [b"found"]
