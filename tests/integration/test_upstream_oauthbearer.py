"""The proxy logs in to the brokers with OAUTHBEARER: tokens from a real OIDC provider's token endpoint
(the client-credentials grant, KIP-768), checked by the broker's own validator against the provider's
keys. Tokens live 12 s and broker sessions 6 s, so within the test the proxy re-authenticates (KIP-368)
and replaces its token several times while a producer goes on without an error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tenantry.localkafka import KafkaBroker
from tenantry.localkafka.broker import AUTHORIZER, SERVICE_USER
from tenantry.localkafka.oidc import Provider, broker_oauthbearer, oidc_provider

from .conftest import (
    KAFKA_VERSION,
    REAUTH_MS,
    RunningProxy,
    client_config,
    start_proxy,
    stop_checked,
    unique,
    write_tenants,
)
from .test_tenant_isolation import consume, create, produce
from .test_upstream_reauth import produce_across_broker_sessions

pytestmark = pytest.mark.integration
ISSUER = "kafka-idp"
TOKEN_SECONDS = 12


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    claims = {SERVICE_USER: {"sub": SERVICE_USER, "aud": ["kafka"]}}
    with oidc_provider(tmp_path_factory.mktemp("idp"), (ISSUER,), claims, TOKEN_SECONDS) as running:
        yield running


@pytest.fixture(scope="module")
def oauth_broker(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    properties, jvm = broker_oauthbearer(provider, ISSUER, "kafka")
    broker = KafkaBroker(tmp_path_factory.mktemp("oauth-kafka"), version=KAFKA_VERSION, jvm_options=jvm,
                         extra_properties={**AUTHORIZER, **properties, "connections.max.reauth.ms": str(REAUTH_MS)})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def proxy(oauth_broker: KafkaBroker, provider: Provider, tmp_path_factory) -> Iterator[RunningProxy]:
    workdir = tmp_path_factory.mktemp("oauth-up-proxy")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    flags = ("--upstream-security-protocol", "SASL_PLAINTEXT", "--upstream-sasl-mechanism", "OAUTHBEARER",
             "--upstream-sasl-username", SERVICE_USER, "--upstream-sasl-oauthbearer-scope", "kafka",
             "--upstream-sasl-oauthbearer-token-endpoint-url", provider.token_endpoint(ISSUER),
             # the broker's authorizer knows the service user (the token's sub) as a super user only
             "--upstream-identity", "service")
    running = start_proxy(oauth_broker, workdir, "--config", str(config), "--listener-security-protocol",
                          "SASL_PLAINTEXT", upstream_flags=flags)
    try:
        yield running
    finally:
        stop_checked(running)


def test_tenants_through_a_proxy_that_logs_in_with_tokens(proxy, oauth_broker):
    settings = client_config(proxy, "alice")
    topic = unique("oauth-up")
    create(settings, topic)
    produce(settings, topic, [b"upstream by token"])
    assert consume(settings, topic, unique("g"), 1) == [b"upstream by token"]
    assert produce_across_broker_sessions(settings, topic) > 10
    log = proxy.log_text()
    assert "re-authenticated to the broker" in log
    assert log.count("fetched an upstream OAUTHBEARER token") >= 2  # replaced before it expired
    assert "broker refused" not in log and "closing broker connection" not in log
