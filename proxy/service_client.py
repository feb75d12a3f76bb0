"""aiokafka settings for the proxy's own topics on the upstream cluster, as its service user.

The fleet's reports (:mod:`.fleet`) travel through Kafka itself, so the proxy is a Kafka client there,
with the same bootstrap servers, TLS and SASL settings its forwarded connections use. aiokafka does the
client's work (leaders, retries, batching) that the forwarding path never needs.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.oauth_client import TokenSource
from tenantry.proxy.tls import upstream_context

log = logging.getLogger("tenantry.service_client")


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


async def ensure_topic(settings: dict[str, Any], topic: str, replication: int, configs: dict[str, str]) -> None:
    """Create the one-partition `topic` with `configs` unless it exists (replication 0: three, or every broker of a
    smaller cluster); raises the broker's error if it refuses."""
    admin = AIOKafkaAdminClient(**settings)
    await admin.start()
    try:
        if topic in await admin.list_topics():
            return
        replication = replication or min(3, len((await admin.describe_cluster())["brokers"]))
        response = await admin.create_topics([NewTopic(topic, 1, replication, topic_configs=configs)])
        for _, code, *message in response.topic_errors:
            if code == TopicAlreadyExistsError.errno:
                return  # another replica was quicker
            if code:
                raise for_code(code)(*message)
        log.info("created topic %s (%d replicas, %s)", topic, replication, configs)
    finally:
        await admin.close()
