"""SASL OAUTHBEARER at the proxy (RFC 7628, KIP-255): a client presents a JWT its identity provider signed.

The token must be signed by a key of the issuer's JWKS, name the expected issuer and one of the expected
audiences, and be within its validity; every other token is refused with the same answer. The user is a
claim (``sub`` by default). The tenant is another claim when one is configured (the identity provider
then decides who belongs where, and the user need not be in the config file), or else the tenant whose
user has that name in the config file. The login lasts until the token expires (KIP-368): the client
must re-authenticate with a fresh token to go on.

Fetching the keys is the caller's (it is I/O); this module only decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from tenantry.tenants.registry import Registry, Tenant, User

MECHANISM = "OAUTHBEARER"
#: Asymmetric algorithms only: with a JWKS of public keys, "HS256" would let anyone who knows a public key
#: sign tokens with it as an HMAC secret (the algorithm-confusion attack).
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
_CLIENT_FIRST = re.compile(rb"n,(?:a=[^,]*)?,\x01(?P<pairs>.*)\x01\x01", re.DOTALL)

KeyFinder = Callable[[str], Any]  # a token's signing key, found by its "kid" (may fetch the JWKS)


class InvalidToken(Exception):
    """Why a token was refused, for the proxy's log; the client is told only that it was."""


@dataclass(frozen=True)
class TokenRules:
    issuer: str
    audiences: tuple[str, ...]
    user_claim: str = "sub"
    tenant_claim: str = ""  # empty: the user's tenant in the config file


@dataclass(frozen=True)
class Verified:
    tenant: Tenant
    user: User
    expires_at: float  # the token's "exp", seconds since the epoch


def bearer_token(client_first: bytes) -> str:
    """The token of a client's first message: ``n,[a=authzid],^Aauth=Bearer <token>^A...^A^A``."""
    match = _CLIENT_FIRST.fullmatch(client_first)
    if match is None:
        raise InvalidToken("not an OAUTHBEARER client message")
    for pair in match.group("pairs").split(b"\x01"):
        key, _, value = pair.partition(b"=")
        if key == b"auth":
            scheme, _, token = value.decode("utf-8", errors="replace").partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    raise InvalidToken("no bearer token in the client message")


def verify(token: str, find_key: KeyFinder, rules: TokenRules, registry: Registry) -> Verified:
    """The tenant and user a valid token names; raises InvalidToken."""
    try:
        claims = jwt.decode(token, find_key(token), algorithms=ALGORITHMS, audience=list(rules.audiences),
                            issuer=rules.issuer, options={"require": ["exp", "iss", "aud"]}, leeway=30)
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"{type(exc).__name__}: {exc}") from None
    name = claims.get(rules.user_claim)
    if not isinstance(name, str) or not name:
        raise InvalidToken(f"the token has no {rules.user_claim!r} claim naming the user")
    if rules.tenant_claim:
        tenant_id = claims.get(rules.tenant_claim)
        tenant = registry.tenants.get(tenant_id) if isinstance(tenant_id, str) else None
        if tenant is None:
            raise InvalidToken(f"the token's {rules.tenant_claim!r} claim {tenant_id!r} is no tenant")
        user = tenant.users.get(name) or User(name)
        owner = registry.lookup(name)
        if owner is not None and owner[0] is not tenant:  # a configured user of another tenant: never theirs
            raise InvalidToken(f"user {name!r} belongs to another tenant than the token's {tenant_id!r}")
    else:
        found = registry.lookup(name)
        if found is None:
            raise InvalidToken(f"user {name!r} is no tenant's user")
        tenant, user = found
    return Verified(tenant, user, float(claims["exp"]))
