"""aiokafka settings for the proxy's own topics on the upstream cluster, as its service user.

The fleet's reports (:mod:`.fleet`) travel through Kafka itself, so the proxy is a Kafka client there,
with the same bootstrap servers, TLS and SASL settings its forwarded connections use. aiokafka does the
client's work (leaders, retries, batching) that the forwarding path never needs.
"""

from __future__ import annotations

from typing import Any

from aiokafka.abc import AbstractTokenProvider

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.oauth_client import TokenSource
from tenantry.proxy.tls import upstream_context


class _Tokens(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def token(self) -> str:
        return await self.source.token()


def service_client_settings(config: ProxyConfig, client_id: str) -> dict[str, Any]:
    """Keyword arguments for an aiokafka producer, consumer or admin client logging in as the service user."""
    settings: dict[str, Any] = {"bootstrap_servers": list(config.upstream), "client_id": client_id,
                                "security_protocol": config.upstream_security_protocol,
                                "request_timeout_ms": 10_000}
    if config.upstream_tls:
        settings["ssl_context"] = upstream_context(config)
    if config.upstream_sasl:
        settings["sasl_mechanism"] = config.upstream_sasl_mechanism
        if config.upstream_sasl_mechanism == "OAUTHBEARER":
            settings["sasl_oauth_token_provider"] = _Tokens(TokenSource(
                config.upstream_sasl_oauthbearer_token_endpoint_url, config.upstream_sasl_username,
                config.upstream_sasl_password, config.upstream_sasl_oauthbearer_scope))
        else:
            settings["sasl_plain_username"] = config.upstream_sasl_username
            settings["sasl_plain_password"] = config.upstream_sasl_password
    return settings
