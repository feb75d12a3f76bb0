"""mTLS at the proxy: an SSL listener where the client certificate is the login. Its subject goes through
ssl_principal_mapping_rules to a tenant's user, who then lives in that tenant's namespace as a SASL user
does. librdkafka and aiokafka, with certificates from a CA the test makes."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tenantry.localkafka.certs import Authority, Issued

from .conftest import RunningProxy, start_proxy, stop_checked, unique, write_tenants
from .test_tenant_isolation import consume, create, produce

pytestmark = pytest.mark.integration
RULES = "RULE:^CN=([^,]+),OU=tenantry-clients,.*$/$1/L"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    authority = Authority(tmp_path_factory.mktemp("mtls-ca"))
    stranger = Authority(tmp_path_factory.mktemp("other-ca"))
    return {
        "ca": authority,
        "server": authority.issue("proxy", "proxy", hosts=("127.0.0.1", "localhost")),
        "user": authority.issue("carol", "Carol", client=True, unit="tenantry-clients"),
        "nobody": authority.issue("mallory", "mallory", client=True, unit="tenantry-clients"),
        "unmapped": authority.issue("dave", "dave", client=True),  # no OU: no rule matches
        "stranger": stranger.issue("carol-forged", "carol", client=True, unit="tenantry-clients"),
    }


@pytest.fixture(scope="module")
def mtls_proxy(kafka, pki, tmp_path_factory) -> Iterator[RunningProxy]:
    workdir = tmp_path_factory.mktemp("mtls-proxy")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    subprocess.run([sys.executable, "-m", "tenantry.proxy.cli", "user", "add", "acme", "carol", "--certificate",
                    "--config", str(config)], check=True, capture_output=True)
    server = pki["server"]
    assert isinstance(server, Issued)
    proxy = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SSL",
                        "--ssl-certfile", str(server.cert), "--ssl-keyfile", str(server.key),
                        "--ssl-cafile", str(pki["ca"].cert_file), "--ssl-principal-mapping-rules", RULES, tls=True)
    try:
        yield proxy
    finally:
        stop_checked(proxy)


def ssl_settings(proxy: RunningProxy, pki: dict[str, object], who: str) -> dict[str, object]:
    cert = pki[who]
    assert isinstance(cert, Issued)
    return {"bootstrap.servers": proxy.bootstrap, "security.protocol": "SSL",
            "ssl.ca.location": str(pki["ca"].cert_file), "ssl.certificate.location": str(cert.cert),
            "ssl.key.location": str(cert.key)}


def test_a_certificate_logs_in_as_its_tenants_user(mtls_proxy, pki, kafka):
    """carol's certificate maps (lower-cased) to acme's user carol: her topic lands in acme's namespace on
    the broker, and she sees it by its plain name."""
    settings = ssl_settings(mtls_proxy, pki, "user")
    topic = unique("mtls")
    create(settings, topic)
    produce(settings, topic, [b"by certificate"])
    assert consume(settings, topic, unique("g"), 1) == [b"by certificate"]
    on_broker = AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics
    assert [t for t in on_broker if t.endswith(topic)] == [f"acme.{topic}"]
    assert topic in AdminClient(settings).list_topics(timeout=10).topics
    assert "logged in as carol of tenant acme (SSL)" in mtls_proxy.log_text()


@pytest.mark.parametrize(("who", "logged"), [
    ("nobody", "maps to user 'mallory', who is no tenant's user"),
    ("unmapped", "maps to no user"),
    ("stranger", None),  # the TLS handshake fails: another CA signed it
])
def test_a_certificate_of_no_user_gets_nothing(mtls_proxy, pki, who, logged):
    admin = AdminClient({**ssl_settings(mtls_proxy, pki, who), "socket.timeout.ms": 3000,
                         "reconnect.backoff.max.ms": 500})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    if logged is not None:
        assert logged in mtls_proxy.log_text()
    assert mtls_proxy.process.poll() is None


def test_sasl_is_not_offered_on_an_ssl_listener(mtls_proxy, pki):
    """A client that also tries SASL over the mTLS connection is refused the mechanism, not logged in twice."""
    settings = {**ssl_settings(mtls_proxy, pki, "user"), "security.protocol": "SASL_SSL",
                "sasl.mechanism": "PLAIN", "sasl.username": "alice", "sasl.password": "alice-secret",
                "socket.timeout.ms": 3000}
    with pytest.raises(KafkaException):
        AdminClient(settings).list_topics(timeout=5)


async def test_aiokafka_with_a_client_certificate(mtls_proxy, pki):
    cert = pki["user"]
    assert isinstance(cert, Issued)
    context = ssl.create_default_context(cafile=str(pki["ca"].cert_file))
    context.load_cert_chain(str(cert.cert), str(cert.key))
    topic = unique("mtls-aio")
    create(ssl_settings(mtls_proxy, pki, "user"), topic)
    producer = AIOKafkaProducer(bootstrap_servers=mtls_proxy.bootstrap, security_protocol="SSL",
                                ssl_context=context)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"aiokafka by certificate")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=mtls_proxy.bootstrap, security_protocol="SSL",
                                ssl_context=context, group_id=unique("g"), auto_offset_reset="earliest")
    await consumer.start()
    try:
        message = await consumer.getone()
    finally:
        await consumer.stop()
    assert message.value == b"aiokafka by certificate"
