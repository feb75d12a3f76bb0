"""SASL_SSL: tenants log in over TLS, on the bootstrap and the per-broker listeners alike."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import socket
import ssl

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .conftest import client_config, start_proxy, stop_checked, unique, write_tenants
from .helpers import wait_for
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
        stop_checked(proxy)


def served_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        return tls.getpeercert(binary_form=True) or b""


def test_sighup_reloads_the_certificate_for_new_connections(kafka, tmp_path):
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    cert, key = self_signed(first_dir)
    new_cert, new_key = self_signed(second_dir)
    config = tmp_path / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(kafka, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_SSL",
                        "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--config-poll-seconds", "0", tls=True)
    try:
        before = served_certificate(proxy.port)
        cert.write_bytes(new_cert.read_bytes())
        key.write_bytes(new_key.read_bytes())
        proxy.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded TLS certificate" in proxy.log_text(), 10, "the certificate reload")
        after = served_certificate(proxy.port)
        assert before != after
        assert after == ssl.PEM_cert_to_DER_cert(new_cert.read_text())
    finally:
        stop_checked(proxy)
