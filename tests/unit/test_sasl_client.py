"""The proxy's own upstream logins, checked against scramp's SCRAM server (a separate implementation)."""

from __future__ import annotations

import pytest
from scramp import ScramException, ScramMechanism

from tenantry.proxy import sasl_client as module
from tenantry.proxy.sasl_client import SaslError, sasl_client


def scram_server(mechanism: str, username: str, password: str, iterations: int = 4096):
    scheme = ScramMechanism(mechanism)
    salt, stored_key, server_key, _ = scheme.make_auth_info(password, iteration_count=iterations)

    def lookup(name: str):
        if name != username:
            raise ScramException("unknown user")
        return salt, stored_key, server_key, iterations
    return scheme.make_server(lookup)


def log_in(mechanism: str, username: str, password: str, server) -> None:
    client = sasl_client(mechanism, username, password)
    server.set_client_first(client.first_message().decode())
    final = client.next_message(server.get_server_first().encode())
    assert final is not None
    server.set_client_final(final.decode())  # scramp raises if the proof is wrong
    assert client.next_message(server.get_server_final().encode()) is None  # and we check the server's


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_scram_login_is_accepted_by_an_independent_server(mechanism):
    log_in(mechanism, "svc,admin=1", "pässword", scram_server(mechanism, "svc,admin=1", "pässword"))


def test_the_salted_password_is_derived_once_per_salt_however_many_logins_use_it():
    module.salted_password.cache_clear()
    scheme = ScramMechanism("SCRAM-SHA-512")
    salt, stored, key, _ = scheme.make_auth_info("secret", iteration_count=4096)
    for _ in range(20):  # one broker user: the same salt on every login
        log_in("SCRAM-SHA-512", "svc", "secret", scheme.make_server(lambda _name: (salt, stored, key, 4096)))
    assert module.salted_password.cache_info().misses == 1
    log_in("SCRAM-SHA-512", "svc", "secret", scram_server("SCRAM-SHA-512", "svc", "secret"))  # a new salt
    assert module.salted_password.cache_info().misses == 2


def test_a_wrong_password_fails_at_the_server_and_a_fake_server_fails_at_the_client():
    with pytest.raises(ScramException):
        log_in("SCRAM-SHA-256", "svc", "wrong", scram_server("SCRAM-SHA-256", "svc", "right"))
    # A server that does not know the password cannot produce the signature the client checks.
    client = sasl_client("SCRAM-SHA-256", "svc", "right")
    server = scram_server("SCRAM-SHA-256", "svc", "other")
    server.set_client_first(client.first_message().decode())
    client.next_message(server.get_server_first().encode())
    with pytest.raises(SaslError, match="signature is wrong"):
        client.next_message(b"v=" + b"A" * 88)


@pytest.mark.parametrize("server_first", [
    b"e=other-error",
    b"r=someone-elses-nonce,s=c2FsdA==,i=4096",
    b"i=4096",
    b"r=%s,s=not base64!,i=4096",
    b"r=%s,s=c2FsdA==,i=zero",
])
def test_a_malformed_or_foreign_server_first_message_is_a_clean_error(server_first):
    client = sasl_client("SCRAM-SHA-256", "svc", "pw")
    nonce = client.first_message().decode().rsplit("r=", 1)[1]
    with pytest.raises(SaslError):
        client.next_message(server_first.replace(b"%s", (nonce + "srv").encode()))
