"""The identity provider's signing keys for OAUTHBEARER logins, fetched from its JWKS and cached.

PyJWT's JWKS client does the work: it caches the key set for an hour and fetches it again when a token
names a key it does not hold (a provider rotating its keys). It blocks, so it runs where SASL steps run,
in a worker thread, never on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt

from tenantry.tenants.oauthbearer import InvalidToken, KeyFinder, TokenRules

if TYPE_CHECKING:
    from tenantry.proxy.config import ProxyConfig

JWKS_LIFESPAN_SECONDS = 3600


def token_checks(config: ProxyConfig) -> tuple[KeyFinder, TokenRules] | None:
    """What OAUTHBEARER logins are checked with, if that mechanism is enabled."""
    if "OAUTHBEARER" not in config.sasl_enabled_mechanisms:
        return None
    client = jwt.PyJWKClient(config.sasl_oauthbearer_jwks_endpoint_url, cache_keys=True,
                             lifespan=JWKS_LIFESPAN_SECONDS, timeout=10)

    def find_key(token: str) -> Any:
        try:
            return client.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientError as exc:  # no such key, or the provider cannot be reached
            raise InvalidToken(f"no signing key for the token: {exc}") from None
        except jwt.DecodeError as exc:
            raise InvalidToken(f"not a JWT: {exc}") from None

    rules = TokenRules(config.sasl_oauthbearer_expected_issuer, tuple(config.sasl_oauthbearer_expected_audience),
                       config.sasl_oauthbearer_user_claim, config.sasl_oauthbearer_tenant_claim)
    return find_key, rules
