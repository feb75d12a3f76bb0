"""A real OpenID Connect provider for tests and local trials: NAV's mock-oauth2-server, from Maven Central.

It serves, per issuer id, the discovery document, a JWKS and a token endpoint that grants
client-credentials requests with signed JWTs (``sub`` is the client id, ``aud`` the requested scope
unless a mapping says otherwise). `claims` sets the claims per client id (or per ``param=value`` of the
token request), for example the tenant a client belongs to; `token_seconds` sets how long tokens live.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tenantry.localkafka.broker import free_port
from tenantry.localkafka.jars import cache_root, fetch_from_maven
from tenantry.localkafka.processes import stop_process

VERSION = "2.1.10"
MAIN = "no.nav.security.mock.oauth2.StandaloneMockOAuth2ServerKt"
_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tenantry.local</groupId><artifactId>oidc</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>no.nav.security</groupId><artifactId>mock-oauth2-server</artifactId>
      <version>{VERSION}</version></dependency>
  </dependencies>
</project>
"""


def jars() -> Path:
    lib = cache_root().parent / "mock-oauth2-server" / VERSION / "lib"
    if (lib / f"mock-oauth2-server-{VERSION}.jar").exists():
        return lib
    return fetch_from_maven(_POM, lib, f"mock-oauth2-server {VERSION}")


class Provider:
    """A running provider; each issuer id is its own issuer, with its own keys."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def issuer(self, issuer_id: str) -> str:
        return f"{self.base}/{issuer_id}"

    def jwks(self, issuer_id: str) -> str:
        return f"{self.base}/{issuer_id}/jwks"

    def token_endpoint(self, issuer_id: str) -> str:
        return f"{self.base}/{issuer_id}/token"

    def token(self, issuer_id: str, client_id: str, scope: str) -> str:
        """A client-credentials grant, as a client library would ask for one."""
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client_id,
                                       "client_secret": "any", "scope": scope}).encode()
        with urllib.request.urlopen(self.token_endpoint(issuer_id), body, timeout=10) as answer:
            return str(json.load(answer)["access_token"])


@contextmanager
def oidc_provider(workdir: Path, issuer_ids: tuple[str, ...] = ("tenantry",),
                  claims: dict[str, dict[str, object]] | None = None, token_seconds: int = 3600) -> Iterator[Provider]:
    """Start the provider (fetching it from Maven Central on first use); stop it on the way out."""
    port = free_port()
    # A key "client_id" matches a client id; "param=value" another form parameter (clients that send their
    # credentials in an Authorization header, as Kafka's Java client does, are told apart by scope).
    mappings = [{"requestParam": key.partition("=")[0] if "=" in key else "client_id",
                 "match": key.partition("=")[2] if "=" in key else key, "claims": extra}
                for key, extra in (claims or {}).items()]
    config = {"interactiveLogin": False, "tokenCallbacks": [
        {"issuerId": issuer, "tokenExpiry": token_seconds, "requestMappings": mappings} for issuer in issuer_ids]}
    env = dict(os.environ, SERVER_PORT=str(port), SERVER_HOSTNAME="127.0.0.1", JSON_CONFIG=json.dumps(config))
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / f"oidc-{port}.log", "wb") as log:
        process = subprocess.Popen(["java", "-Xmx256m", "-cp", f"{jars()}/*", MAIN], stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
    provider = Provider(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{provider.issuer(issuer_ids[0])}/.well-known/openid-configuration",
                                            timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the OIDC provider did not start; see {workdir}") from None
                time.sleep(0.3)
        yield provider
    finally:
        stop_process(process, 10)


def broker_oauthbearer(provider: Provider, issuer_id: str, audience: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """Broker properties and JVM options for an OAUTHBEARER login on the SASL_PLAINTEXT listener, its tokens
    checked against `provider`'s keys (KIP-768's validator), beside PLAIN and SCRAM."""
    prefix = "listener.name.sasl_plaintext.oauthbearer."
    properties = {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        prefix + "sasl.jaas.config": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
        prefix + "sasl.server.callback.handler.class":
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler",
        "sasl.oauthbearer.jwks.endpoint.url": provider.jwks(issuer_id),
        "sasl.oauthbearer.expected.issuer": provider.issuer(issuer_id),
        "sasl.oauthbearer.expected.audience": audience,
    }
    # Kafka 4 fetches only from URLs it is told it may (CVE-2025-27817); earlier versions ignore this.
    return properties, (f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={provider.jwks(issuer_id)}",)
