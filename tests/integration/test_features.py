"""Features reach clients through the proxy as the broker reports them: all of them, and current."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from tenantry.protocol.messages.api_versions_request import ApiVersionsRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest

from .conftest import unique
from .rawclient import call, connect
from .test_hostile_tenant import login

LATEST = 4


def features(sock, corr: int = 1):
    response = call(sock, ApiVersionsRequest(client_software_name="t", client_software_version="1"), LATEST,
                    corr=corr)
    supported = {(f.name, f.min_version, f.max_version) for f in response.supported_features}
    finalized = {(f.name, f.min_version_level, f.max_version_level) for f in response.finalized_features}
    return supported, finalized, response.finalized_features_epoch


def _advance_the_metadata_log(kafka) -> int:
    """The broker's feature epoch is its metadata offset: any topic change moves it on."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for future in admin.create_topics([NewTopic(unique("epoch"), 1, 1)]).values():
        future.result(30)
    with connect(kafka.bootstrap) as direct:
        return features(direct)[2]


def test_every_feature_the_broker_reports_reaches_tenants_before_and_after_login(tenant_proxy, kafka):
    with connect(kafka.bootstrap) as direct:
        supported, finalized, _ = features(direct)
    assert len(supported) > 1  # Kafka 4 leaves those with minimum 0 out of v3: the proxy must ask with v4
    with connect(tenant_proxy.bootstrap) as before_login:
        assert features(before_login)[:2] == (supported, finalized)
    with login(tenant_proxy, "alicia") as after_login:
        assert features(after_login, corr=9)[:2] == (supported, finalized)


def test_the_feature_epoch_follows_the_broker_without_a_restart(tenant_proxy, kafka):
    epoch = _advance_the_metadata_log(kafka)
    with login(tenant_proxy, "alicia") as sock:  # the request opens a connection to a broker, which
        call(sock, MetadataRequest(topics=[]), 12, corr=3)  # brings the proxy the broker's current features
    with connect(tenant_proxy.bootstrap) as before_login:
        assert features(before_login)[2] >= epoch
