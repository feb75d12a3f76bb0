"""The TLS context of SASL_SSL listeners; reloading swaps the certificate for new handshakes only."""

from __future__ import annotations

import logging
import ssl

from tenantry.proxy.config import ProxyConfig

log = logging.getLogger("tenantry.tls")


def server_context(config: ProxyConfig) -> ssl.SSLContext | None:
    if config.listener_security_protocol != "SASL_SSL":
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
    return context


def reload_certificate(context: ssl.SSLContext | None, config: ProxyConfig) -> None:
    """Load the certificate and key again; connections already open keep theirs."""
    if context is None:
        return
    try:
        context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
    except (OSError, ssl.SSLError) as exc:
        log.error("TLS certificate reload refused, keeping the current one: %s", exc)
        return
    log.info("reloaded TLS certificate %s", config.ssl_certfile)
