"""SASL at the proxy: right passwords in, wrong ones and unknown users out, indistinguishably."""

import pytest
from scramp import ScramClient

from tenantry.tenants import admin
from tenantry.tenants.auth import FAILED, AuthenticationFailed, SaslExchange
from tenantry.tenants.registry import Registry

SECRET = b"k" * 32


@pytest.fixture(scope="module")
def registry() -> Registry:
    data: dict = {}
    admin.add_tenant(data, "acme")
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        admin.add_user(data, "acme", "alice", mechanism, "right")
    admin.add_tenant(data, "globex")
    admin.add_user(data, "globex", "bob", "SCRAM-SHA-512", "bobs")
    return Registry.from_config(data)


def scram_login(registry, mechanism, user, password):
    exchange = SaslExchange(registry, mechanism, SECRET)
    client = ScramClient([mechanism], user, password)
    client.set_server_first(exchange.step(client.get_client_first().encode()).decode())
    final = exchange.step(client.get_client_final().encode())
    client.set_server_final(final.decode())  # the client verifies the proxy knows the keys too
    return exchange.principal


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_login_gives_the_users_tenant(registry, mechanism):
    principal = scram_login(registry, mechanism, "alice", "right")
    assert (principal.tenant.id, principal.name, principal.mechanism) == ("acme", "alice", mechanism)


def test_plain_login(registry):
    exchange = SaslExchange(registry, "PLAIN", SECRET)
    assert exchange.step(b"\0alice\0right") == b""
    assert exchange.principal.tenant.id == "acme"


@pytest.mark.parametrize(("user", "password"), [("alice", "wrong"), ("mallory", "right"), ("bob", "right")])
def test_scram_failures_all_look_the_same(registry, user, password):
    with pytest.raises(AuthenticationFailed, match=FAILED):
        scram_login(registry, "SCRAM-SHA-512", user, password)


def test_unknown_users_get_a_stable_salt_like_real_users(registry):
    def salt_for(user):
        exchange = SaslExchange(registry, "SCRAM-SHA-512", SECRET)
        first = ScramClient(["SCRAM-SHA-512"], user, "x").get_client_first()
        return dict(kv.split("=", 1) for kv in exchange.step(first.encode()).decode().split(","))["s"]
    assert salt_for("mallory") == salt_for("mallory")
    assert salt_for("mallory") != salt_for("trudy")


def test_a_user_without_that_mechanism_cannot_use_it(registry):
    with pytest.raises(AuthenticationFailed):
        scram_login(registry, "SCRAM-SHA-256", "bob", "bobs")


@pytest.mark.parametrize("token", [b"\0alice\0wrong", b"\0nobody\0right", b"garbage", b"bob\0alice\0right", b""])
def test_plain_failures(registry, token):
    with pytest.raises(AuthenticationFailed, match=FAILED):
        SaslExchange(registry, "PLAIN", SECRET).step(token)


def test_garbage_scram_tokens_fail_cleanly(registry):
    with pytest.raises(AuthenticationFailed):
        SaslExchange(registry, "SCRAM-SHA-512", SECRET).step(b"\xff\xfe not scram")


def server_first(registry, mechanism: str, user: str, secret: bytes = SECRET) -> dict[str, str]:
    """The salt and iterations the proxy answers a SCRAM client-first with, as the client sees them."""
    exchange = SaslExchange(registry, mechanism, secret)
    answer = exchange.step(f"n,,n={user},r=abcdefgh".encode()).decode()
    return {part[0]: part[2:] for part in answer.split(",") if part[0] in "si"}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_unknown_users_and_missing_mechanisms_get_salts_shaped_like_real_ones(registry, mechanism):
    import base64

    real = server_first(registry, mechanism, "alice")
    unknown = server_first(registry, mechanism, "mallory")
    lacking = server_first(registry, "SCRAM-SHA-256", "bob")  # bob has only SCRAM-SHA-512
    for invented in (unknown, lacking):
        assert len(base64.b64decode(invented["s"])) == len(base64.b64decode(real["s"])) == 32
        assert invented["i"] == real["i"]


def test_an_invented_salt_is_stable_for_the_same_secret_and_differs_by_name_and_secret(registry):
    first = server_first(registry, "SCRAM-SHA-512", "mallory")
    assert server_first(registry, "SCRAM-SHA-512", "mallory") == first  # a restart with the same secret
    assert server_first(registry, "SCRAM-SHA-512", "trudy") != first
    assert server_first(registry, "SCRAM-SHA-512", "mallory", b"x" * 32) != first


def test_the_salt_secret_is_the_same_for_every_replica_with_the_same_config():
    from tenantry.proxy.config import ProxyConfig, salt_secret

    one = ProxyConfig(upstream=["h:1"], upstream_sasl_password="service-pw")
    assert salt_secret(one) == salt_secret(ProxyConfig(upstream=["h:1"], upstream_sasl_password="service-pw"))
    assert salt_secret(one) != salt_secret(ProxyConfig(upstream=["h:1"], sasl_salt_secret="own"))
