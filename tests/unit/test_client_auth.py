"""The client SASL state machine, with an injected clock."""

import pytest

from tenantry.proxy.client_auth import AUTHENTICATED, ClientAuth, IllegalSaslState
from tenantry.tenants import admin
from tenantry.tenants.auth import AuthenticationFailed
from tenantry.tenants.registry import Registry


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def registry():
    data: dict = {}
    admin.add_tenant(data, "acme")
    admin.add_user(data, "acme", "alice", "PLAIN", "a")
    admin.add_user(data, "acme", "carol", "PLAIN", "c")
    return Registry.from_config(data)


def auth(registry, clock=None, lifetime=0):
    return ClientAuth(lambda: registry, ["PLAIN", "SCRAM-SHA-512"], lifetime, b"s" * 32, clock or Clock())


def test_login_then_session_expiry(registry):
    clock = Clock()
    a = auth(registry, clock, lifetime=60_000)
    assert a.handshake("PLAIN")
    a.authenticate(b"\0alice\0a")
    assert a.state == AUTHENTICATED and a.principal.tenant.id == "acme"
    assert a.session_lifetime_ms() == 60_000
    clock.now += 59
    assert not a.expired()
    clock.now += 1
    assert a.expired()


def test_reauthentication_keeps_the_principal(registry):
    a = auth(registry)
    a.handshake("PLAIN")
    a.authenticate(b"\0alice\0a")
    a.handshake("PLAIN")
    a.authenticate(b"\0alice\0a")
    assert a.principal.name == "alice"
    a.handshake("PLAIN")
    with pytest.raises(AuthenticationFailed):
        a.authenticate(b"\0carol\0c")  # a valid login, but as someone else


def test_reauthentication_cannot_switch_mechanism(registry):
    a = auth(registry)
    a.handshake("PLAIN")
    a.authenticate(b"\0alice\0a")
    with pytest.raises(IllegalSaslState):
        a.handshake("SCRAM-SHA-512")


def test_disabled_mechanism_is_refused(registry):
    assert not auth(registry).handshake("SCRAM-SHA-256")


def test_authenticate_before_handshake_is_illegal(registry):
    with pytest.raises(IllegalSaslState):
        auth(registry).authenticate(b"\0alice\0a")
