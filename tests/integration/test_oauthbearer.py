"""SASL OAUTHBEARER at the proxy, against a real OpenID Connect provider (mock-oauth2-server, from Maven
Central) the test starts: librdkafka fetches its own token from the provider's token endpoint (the
client-credentials grant) and logs in with it; the proxy checks it against the provider's JWKS and takes
the tenant from a claim. Tokens from another issuer, for another audience, for no tenant, or that are no
JWT at all get SASL_AUTHENTICATION_FAILED, and the login lasts exactly as long as the token (KIP-368)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest
from confluent_kafka.admin import AdminClient

from tenantry.localkafka.oidc import Provider, oidc_provider
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

from .conftest import RunningProxy, start_proxy, stop_checked, unique, write_tenants
from .rawclient import call, connect
from .test_java_client import run_java
from .test_tenant_isolation import consume, create, produce

pytestmark = pytest.mark.integration
ISSUER = "tenantry"
TOKEN_SECONDS = 600
CLAIMS: dict[str, dict[str, object]] = {
    "payments-app": {"sub": "payments-app", "aud": ["kafka"], "tenant": "acme"},
    "billing-app": {"sub": "billing-app", "aud": ["billing"], "tenant": "acme"},  # a token for another service
    "scope=java-payments": {"sub": "payments-java", "aud": ["kafka"], "tenant": "acme"},
    "ghost-app": {"sub": "ghost-app", "aud": ["kafka"], "tenant": "initech"},  # no such tenant
    "alice": {"sub": "alice", "aud": ["kafka"], "tenant": "globex"},  # acme's configured user, claimed for globex
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with oidc_provider(tmp_path_factory.mktemp("oidc"), (ISSUER, "elsewhere"), CLAIMS, TOKEN_SECONDS) as running:
        yield running


@pytest.fixture(scope="module")
def oauth_proxy(kafka, provider, tmp_path_factory) -> Iterator[RunningProxy]:
    workdir = tmp_path_factory.mktemp("oauth-proxy")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--sasl-enabled-mechanisms", "SCRAM-SHA-512,PLAIN,OAUTHBEARER",
                        "--sasl-oauthbearer-jwks-endpoint-url", provider.jwks(ISSUER),
                        "--sasl-oauthbearer-expected-issuer", provider.issuer(ISSUER),
                        "--sasl-oauthbearer-expected-audience", "kafka",
                        "--sasl-oauthbearer-tenant-claim", "tenant", "--auth-failure-delay-ms", "100")
    try:
        yield proxy
    finally:
        stop_checked(proxy)


def test_librdkafka_logs_in_with_a_token_from_the_provider(oauth_proxy, provider, kafka):
    """The token comes from the provider's token endpoint through the client's oauth_cb (confluent-kafka
    2.16 installs its own refresh callback, which leaves librdkafka's built-in OIDC fetch unused)."""
    def oauth_cb(_config: object) -> tuple[str, float]:
        token = provider.token(ISSUER, "payments-app", "kafka")
        return token, jwt.decode(token, options={"verify_signature": False})["exp"]
    settings = {"bootstrap.servers": oauth_proxy.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "OAUTHBEARER", "oauth_cb": oauth_cb}
    topic = unique("oauth")
    create(settings, topic)
    produce(settings, topic, [b"with a token"])
    assert consume(settings, topic, unique("g"), 1) == [b"with a token"]
    on_broker = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics
    assert [t for t in on_broker if t.endswith(topic)] == [f"acme.{topic}"]  # the claim's tenant
    assert "as payments-app of tenant acme (OAUTHBEARER)" in oauth_proxy.log_text()


def test_the_java_client_logs_in_with_its_own_oidc_login(oauth_proxy, provider):
    """Kafka's Java client fetches its token itself (OAuthBearerLoginCallbackHandler, KIP-768)."""
    endpoint = provider.token_endpoint(ISSUER)
    out = run_java("produce-consume", oauth_proxy.bootstrap, unique("oauth-java"),
                   oauth=f"{endpoint}|payments-java|java-payments",
                   jvm=(f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={endpoint}",))
    assert "OK consumed 500" in out and "OK committed 500" in out
    assert "as payments-java of tenant acme (OAUTHBEARER)" in oauth_proxy.log_text()


def bearer_login(proxy: RunningProxy, token: str) -> tuple[int, int]:
    """(error code, session lifetime ms) of a raw OAUTHBEARER login with `token`."""
    with connect(proxy.bootstrap) as sock:
        assert call(sock, SaslHandshakeRequest(mechanism="OAUTHBEARER"), 1).error_code == 0
        answer = call(sock, SaslAuthenticateRequest(auth_bytes=f"n,,\x01auth=Bearer {token}\x01\x01".encode()), 2,
                      corr=2)
        return answer.error_code, answer.session_lifetime_ms


def test_the_login_lasts_as_long_as_the_token(oauth_proxy, provider):
    error, lifetime_ms = bearer_login(oauth_proxy, provider.token(ISSUER, "payments-app", "kafka"))
    assert error == 0
    assert (TOKEN_SECONDS - 60) * 1000 < lifetime_ms <= TOKEN_SECONDS * 1000


@pytest.mark.parametrize(("issuer", "client", "scope", "logged"), [
    ("elsewhere", "payments-app", "kafka", ("no signing key", "InvalidIssuerError")),  # another issuer's
    (ISSUER, "billing-app", "billing", "InvalidAudienceError"),
    (ISSUER, "ghost-app", "kafka", "claim 'initech' is no tenant"),
    (ISSUER, "alice", "kafka", "user 'alice' belongs to another tenant"),
    (None, None, None, "not a JWT"),
])
def test_a_token_the_proxy_must_not_trust_fails_the_login(oauth_proxy, provider, issuer, client, scope, logged):
    token = provider.token(issuer, client, scope) if issuer else "not.a.jwt"
    started = time.monotonic()
    error, _ = bearer_login(oauth_proxy, token)
    assert error == 58  # SASL_AUTHENTICATION_FAILED
    assert time.monotonic() - started >= 0.1  # answered after auth_failure_delay_ms, as any failed login
    assert any(reason in oauth_proxy.log_text() for reason in ((logged,) if isinstance(logged, str) else logged))
