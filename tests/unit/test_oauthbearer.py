"""OAUTHBEARER token checks, with keys made here: what a token must be to name a tenant's user."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tenantry.tenants import admin
from tenantry.tenants.auth import AuthenticationFailed, SaslExchange
from tenantry.tenants.oauthbearer import InvalidToken, TokenRules, bearer_token, verify
from tenantry.tenants.registry import Registry

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ISSUER = "https://idp.example/realm"
RULES = TokenRules(ISSUER, ("kafka",))
BY_CLAIM = TokenRules(ISSUER, ("kafka",), tenant_claim="tenant")


@pytest.fixture(scope="module")
def registry() -> Registry:
    data: dict = {}
    admin.add_tenant(data, "acme")
    admin.add_certificate_user(data, "acme", "payments")
    admin.add_tenant(data, "globex")
    admin.add_user(data, "globex", "bob", "SCRAM-SHA-512", "bobs")
    return Registry.from_config(data)


def token(key=KEY, algorithm="RS256", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "kafka", "sub": "payments", "iat": now, "exp": now + 300, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


def public(_token: str):
    return KEY.public_key()


def test_a_token_names_the_configured_user_and_its_tenant(registry):
    verified = verify(token(), public, RULES, registry)
    assert (verified.tenant.id, verified.user.name) == ("acme", "payments")
    assert verified.expires_at > time.time() + 250


def test_with_a_tenant_claim_the_provider_decides_and_users_need_not_be_configured(registry):
    verified = verify(token(sub="etl-job", tenant="globex"), public, BY_CLAIM, registry)
    assert (verified.tenant.id, verified.user.name) == ("globex", "etl-job")


@pytest.mark.parametrize(("claims", "rules", "why"), [
    ({"iss": "https://evil.example"}, RULES, "InvalidIssuerError"),
    ({"aud": "billing"}, RULES, "InvalidAudienceError"),
    ({"exp": int(time.time()) - 3600}, RULES, "ExpiredSignatureError"),
    ({"exp": None}, RULES, "MissingRequiredClaimError"),
    ({"sub": None}, RULES, "no 'sub' claim"),
    ({"sub": "stranger"}, RULES, "no tenant's user"),
    ({"tenant": "initech"}, BY_CLAIM, "is no tenant"),
    ({"sub": "bob", "tenant": "acme"}, BY_CLAIM, "belongs to another tenant"),  # globex's bob, claimed for acme
])
def test_tokens_that_name_no_one(registry, claims, rules, why):
    with pytest.raises(InvalidToken, match=why):
        verify(token(**claims), public, rules, registry)


def test_another_key_and_symmetric_algorithms_are_refused(registry):
    with pytest.raises(InvalidToken, match="InvalidSignatureError"):
        verify(token(key=ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"), lambda t: ec.generate_private_key(
            ec.SECP256R1()).public_key(), RULES, registry)
    # Algorithm confusion: an HMAC "signed" with the public key's bytes must not pass for the public key.
    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    def part(value: dict) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")
    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(
        {"iss": ISSUER, "aud": "kafka", "sub": "payments", "exp": int(time.time()) + 300})
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    forged = (signing_input + b"." + signature).decode()
    with pytest.raises(InvalidToken, match=r"InvalidAlgorithmError|InvalidKeyError"):
        verify(forged, public, RULES, registry)


@pytest.mark.parametrize(("message", "expected"), [
    (b"n,,\x01auth=Bearer abc.def.ghi\x01\x01", "abc.def.ghi"),
    (b"n,a=payments,\x01host=x\x01auth=bearer abc\x01\x01", "abc"),
])
def test_the_client_message(message, expected):
    assert bearer_token(message) == expected


@pytest.mark.parametrize("message", [b"", b"n,,auth=Bearer x", b"y,,\x01auth=Bearer x\x01\x01",
                                     b"n,,\x01auth=Basic x\x01\x01", b"n,,\x01\x01"])
def test_malformed_client_messages(message):
    with pytest.raises(InvalidToken):
        bearer_token(message)


def test_the_sasl_exchange_logs_in_and_keeps_the_reason_of_a_refusal(registry):
    exchange = SaslExchange(registry, "OAUTHBEARER", b"s" * 32, (public, RULES))
    assert exchange.step(f"n,,\x01auth=Bearer {token()}\x01\x01".encode()) == b""
    assert exchange.principal is not None and exchange.principal.tenant.id == "acme"
    assert exchange.expires_at is not None
    refused = SaslExchange(registry, "OAUTHBEARER", b"s" * 32, (public, RULES))
    with pytest.raises(AuthenticationFailed):
        refused.step(f"n,,\x01auth=Bearer {token(aud='billing')}\x01\x01".encode())
    assert "InvalidAudienceError" in refused.refusal and refused.principal is None
    with pytest.raises(ValueError):
        SaslExchange(registry, "OAUTHBEARER", b"s" * 32)  # never without keys and rules
