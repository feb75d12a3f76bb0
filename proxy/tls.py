"""The proxy's TLS contexts: its SASL_SSL listeners', and its own connections' to SSL and SASL_SSL brokers.

Reloading (SIGHUP) re-reads the files for new handshakes only: connections already open keep what they
negotiated. A file that no longer loads is refused and the context in force stays.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING

from tenantry.proxy.sni import BrokerNames

if TYPE_CHECKING:
    from tenantry.proxy.config import ProxyConfig

log = logging.getLogger("tenantry.tls")


class TlsFileError(ValueError):
    """A certificate, key or CA file that cannot be read or used; the message names the setting."""


def _no_prompt(setting: str) -> bytes:
    # Without a password callback, OpenSSL asks for an encrypted key's password on the terminal: a
    # proxy starting in a container would hang there instead of saying what is wrong.
    raise TlsFileError(f"{setting}: the key is encrypted and no password is set")


def server_context(config: ProxyConfig) -> ssl.SSLContext | None:
    """The listeners' context: SASL_SSL, or SSL, which also requires a client certificate the CA signed."""
    if config.listener_security_protocol not in ("SASL_SSL", "SSL"):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_listener_files(context, config)
    if config.sni_broker_host_pattern:
        BrokerNames(config.sni_broker_host_pattern).install(context)
    return context


def _load_listener_files(context: ssl.SSLContext, config: ProxyConfig) -> None:
    """The listener's certificate and key (and, for SSL, the CA of client certificates); TlsFileError naming them."""
    client_ca = config.listener_security_protocol == "SSL"
    try:
        context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, password=lambda: _no_prompt("ssl_keyfile"))
        if client_ca:
            context.load_verify_locations(config.ssl_cafile)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError(f"ssl_certfile/ssl_keyfile{'/ssl_cafile' if client_ca else ''}: cannot load them "
                           f"({_reason(exc)})") from None


def reload_certificate(context: ssl.SSLContext | None, config: ProxyConfig) -> None:
    """Load the listener's certificate and key again; connections already open keep theirs."""
    if context is None:
        return
    try:
        _load_listener_files(context, config)
    except TlsFileError as exc:
        log.error("TLS certificate reload refused, keeping the current one: %s", exc)
        return
    log.info("reloaded TLS certificate %s", config.ssl_certfile)


def upstream_context(config: ProxyConfig) -> ssl.SSLContext | None:
    """The context for connections to the brokers with SSL or SASL_SSL (None otherwise).

    The brokers' chain is always verified, against upstream_ssl_cafile or the system's trust store, and
    their host names too unless upstream_ssl_check_hostname is off. Raises TlsFileError for a file that
    cannot be used.
    """
    if not config.upstream_tls:
        return None
    cafile = config.upstream_ssl_cafile or None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError(f"upstream_ssl_cafile: cannot load {cafile} ({_reason(exc)})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = config.upstream_ssl_check_hostname
    if config.upstream_ssl_certfile:
        password = config.upstream_ssl_key_password
        try:
            context.load_cert_chain(config.upstream_ssl_certfile, config.upstream_ssl_keyfile,
                                    password=(lambda: password) if password else
                                    (lambda: _no_prompt("upstream_ssl_keyfile")))
        except (OSError, ssl.SSLError) as exc:
            raise TlsFileError(f"upstream_ssl_certfile/upstream_ssl_keyfile: cannot load "
                               f"{config.upstream_ssl_certfile} with {config.upstream_ssl_keyfile} "
                               f"({_reason(exc)})") from None
    return context


def reload_upstream(current: ssl.SSLContext | None, config: ProxyConfig) -> ssl.SSLContext | None:
    """A new upstream context from the files as they are now, or `current` if they no longer load."""
    if current is None:
        return None
    try:
        fresh = upstream_context(config)
    except TlsFileError as exc:
        log.error("upstream TLS reload refused, keeping the files loaded before: %s", exc)
        return current
    log.info("reloaded upstream TLS files (CA %s, client certificate %s)", config.upstream_ssl_cafile or "system",
             config.upstream_ssl_certfile or "none")
    return fresh


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
