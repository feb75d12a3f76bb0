"""SASL_SSL: tenants log in over TLS, on the bootstrap and the per-broker listeners alike."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import client_config, start_proxy, stop_proxy, unique, write_tenants
from .test_tenant_isolation import consume, create, produce

pytestmark = pytest.mark.integration


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenantry-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "proxy.pem", tmp_path / "proxy.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_sasl_ssl_round_trip(kafka, tmp_path):
    cert, key = self_signed(tmp_path)
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(kafka, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_SSL",
                        "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), tls=True)
    try:
        settings = {**client_config(proxy, "alice"), "security.protocol": "SASL_SSL", "ssl.ca.location": str(cert)}
        topic = unique("tls")
        create(settings, topic)
        produce(settings, topic, [b"over tls"])
        assert consume(settings, topic, unique("g"), 1) == [b"over tls"]
        plaintext = client_config(proxy, "alice")  # the same listener refuses a client that skips TLS
        with pytest.raises(KafkaException):  # a transport or timeout error: it never gets an answer
            AdminClient({**plaintext, "socket.timeout.ms": 3000}).list_topics(timeout=5)
    finally:
        assert stop_proxy(proxy) == 0
