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
