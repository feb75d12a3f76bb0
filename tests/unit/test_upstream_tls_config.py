"""Upstream TLS settings: what a mistake in them does (refuse to start, naming the setting), never a silent
fallback to an unencrypted or unverified connection."""

import asyncio
import ssl

import pytest
from cryptography.hazmat.primitives import serialization

from tenantry.localkafka.certs import Authority
from tenantry.proxy.config import ConfigError, load_config
from tenantry.proxy.memory import MemoryBudget
from tenantry.proxy.tls import reload_upstream, upstream_context
from tenantry.proxy.upstream import UpstreamConnection, UpstreamError

BASE = {"upstream": "127.0.0.1:9093"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    authority = Authority(tmp_path_factory.mktemp("pki"))
    return authority, authority.issue("proxy", "tenantry-proxy", client=True)


def test_tls_settings_without_a_tls_protocol_are_refused(pki):
    authority, _ = pki
    with pytest.raises(ConfigError, match=r"^upstream_ssl_cafile: set, but upstream_security_protocol is "
                                          r"SASL_PLAINTEXT, so the brokers would be reached unencrypted"):
        load_config(None, {**BASE, "upstream_security_protocol": "SASL_PLAINTEXT", "upstream_sasl_username": "u",
                           "upstream_sasl_password": "p", "upstream_ssl_cafile": str(authority.cert_file)}, {})


def test_a_client_certificate_needs_its_key(pki):
    _, client = pki
    with pytest.raises(ConfigError, match=r"^upstream_ssl_certfile/upstream_ssl_keyfile: a client certificate "
                                          r"needs both"):
        load_config(None, {**BASE, "upstream_security_protocol": "SSL", "upstream_ssl_certfile": str(client.cert)}, {})


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_an_unusable_ca_file_is_named(tmp_path, content):
    cafile = tmp_path / "ca.pem"
    if content is not None:
        cafile.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"^upstream_ssl_cafile: cannot load {cafile}"):
        load_config(None, {**BASE, "upstream_security_protocol": "SSL", "upstream_ssl_cafile": str(cafile)}, {})


def test_sasl_ssl_needs_the_service_login(pki):
    authority, _ = pki
    with pytest.raises(ConfigError, match=r"^upstream_sasl_username/upstream_sasl_password: SASL_SSL needs both"):
        load_config(None, {**BASE, "upstream_security_protocol": "SASL_SSL",
                           "upstream_ssl_cafile": str(authority.cert_file)}, {})


def test_an_encrypted_key_without_its_password_fails_instead_of_prompting(pki, tmp_path):
    _, client = pki
    encrypted = tmp_path / "encrypted.key"
    key = serialization.load_pem_private_key(client.key.read_bytes(), None)
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"sesame")))
    settings = {**BASE, "upstream_security_protocol": "SSL", "upstream_ssl_certfile": str(client.cert),
                "upstream_ssl_keyfile": str(encrypted)}
    with pytest.raises(ConfigError, match=r"^upstream_ssl_keyfile: the key is encrypted and no password is set"):
        load_config(None, settings, {})
    config = load_config(None, settings, {"TENANTRY_UPSTREAM_SSL_KEY_PASSWORD": "sesame"})
    assert upstream_context(config) is not None
    assert "sesame" not in repr(config) and config.redacted()["upstream_ssl_key_password"] == "***"


def test_the_context_verifies_chain_and_host_by_default(pki):
    authority, client = pki
    config = load_config(None, {**BASE, "upstream_security_protocol": "SASL_SSL", "upstream_sasl_username": "u",
                                "upstream_sasl_password": "p", "upstream_ssl_cafile": str(authority.cert_file),
                                "upstream_ssl_certfile": str(client.cert), "upstream_ssl_keyfile": str(client.key)},
                         {})
    context = upstream_context(config)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("organizationName", "Tenantry local cluster"),), (("commonName", "Tenantry local CA"),))]
    unchecked = load_config(None, {**BASE, "upstream_security_protocol": "SSL", "upstream_ssl_check_hostname": "false",
                                   "upstream_ssl_cafile": str(authority.cert_file)}, {})
    context = upstream_context(unchecked)
    assert context is not None and not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_plaintext_has_no_context():
    assert upstream_context(load_config(None, BASE, {})) is None


def test_check_hostname_takes_only_true_or_false():
    with pytest.raises(ConfigError, match=r"^upstream_ssl_check_hostname"):
        load_config(None, {**BASE, "upstream_security_protocol": "SSL", "upstream_ssl_check_hostname": "maybe"}, {})


def test_a_reload_that_cannot_load_keeps_the_context_in_force(pki, tmp_path):
    authority, _ = pki
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(authority.cert_file.read_bytes())
    config = load_config(None, {**BASE, "upstream_security_protocol": "SSL", "upstream_ssl_cafile": str(cafile)}, {})
    current = upstream_context(config)
    cafile.write_text("truncated by a botched rotation")
    assert reload_upstream(current, config) is current
    cafile.write_bytes(authority.cert_file.read_bytes())
    fresh = reload_upstream(current, config)
    assert fresh is not current and fresh is not None and fresh.get_ca_certs()


async def _connect_to_tls_server(config, certificate) -> str:
    """Open an upstream connection to a TLS server presenting `certificate`; the error it ends with."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate.cert, certificate.key)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        await UpstreamConnection.open(config, MemoryBudget(1 << 20), "127.0.0.1", port, None,
                                      tls=upstream_context(config))
    except UpstreamError as exc:
        return str(exc)
    finally:
        server.close()
    return "connected"


@pytest.mark.parametrize("check_hostname", [True, False])
def test_a_certificate_for_another_host_fails_the_hostname_check(pki, check_hostname):
    """The CA signed it, but for broker.example, not 127.0.0.1: refused unless the check is turned off (then
    the TLS handshake succeeds and the connection ends only because this server speaks no Kafka)."""
    authority, _ = pki
    elsewhere = authority.issue("elsewhere", "broker.example", hosts=("broker.example",))
    config = load_config(None, {**BASE, "upstream_security_protocol": "SSL", "upstream_connect_timeout_seconds": "5",
                                "upstream_ssl_cafile": str(authority.cert_file),
                                "upstream_ssl_check_hostname": str(check_hostname).lower()}, {})
    error = asyncio.run(_connect_to_tls_server(config, elsewhere))
    if check_hostname:
        assert "certificate verify failed: IP address mismatch" in error
    else:
        assert "certificate verify failed" not in error and error != "connected"


def test_an_ssl_listener_needs_its_ca_and_parseable_rules(pki, tmp_path):
    authority, _ = pki
    server = authority.issue("listener", "proxy", hosts=("127.0.0.1",))
    listener = {**BASE, "listener_security_protocol": "SSL", "ssl_certfile": str(server.cert),
                "ssl_keyfile": str(server.key), "sasl_salt_secret": "s"}
    with pytest.raises(ConfigError, match=r"^ssl_cafile: SSL needs a readable PEM file"):
        load_config(None, listener, {})
    with pytest.raises(ConfigError, match=r"^ssl_principal_mapping_rules: cannot parse"):
        load_config(None, {**listener, "ssl_cafile": str(authority.cert_file),
                           "ssl_principal_mapping_rules": "RULE:^CN=(.*)$/$1"}, {})
    config = load_config(None, {**listener, "ssl_cafile": str(authority.cert_file)}, {})
    assert config.tenants_enabled
    with pytest.raises(ConfigError, match=r"^probe_tenants: .* need a SASL listener"):
        load_config(None, {**listener, "ssl_cafile": str(authority.cert_file), "probe_tenants": "acme"}, {})


def test_a_listener_certificate_that_does_not_load_is_named(pki, tmp_path):
    authority, _ = pki
    server = authority.issue("listener2", "proxy", hosts=("127.0.0.1",))
    other = authority.issue("listener3", "proxy", hosts=("127.0.0.1",))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    listener = {**BASE, "listener_security_protocol": "SASL_SSL", "sasl_salt_secret": "s"}
    with pytest.raises(ConfigError, match=r"^ssl_certfile/ssl_keyfile: cannot load them"):
        load_config(None, {**listener, "ssl_certfile": str(garbage), "ssl_keyfile": str(server.key)}, {})
    with pytest.raises(ConfigError, match=r"^ssl_certfile/ssl_keyfile: cannot load them"):  # a key of another cert
        load_config(None, {**listener, "ssl_certfile": str(server.cert), "ssl_keyfile": str(other.key)}, {})
    assert load_config(None, {**listener, "ssl_certfile": str(server.cert), "ssl_keyfile": str(server.key)}, {})
