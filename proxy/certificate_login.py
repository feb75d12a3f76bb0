"""Logging in with a client certificate, on an SSL listener (mTLS): the TLS handshake is the login.

The handshake has already verified the certificate against ``ssl_cafile`` when the connection is made.
Its subject, as Kafka writes it (RFC 2253), goes through ``ssl_principal_mapping_rules`` to a user
name, which must be a user of a tenant in the config file; the login then counts against that tenant's
connection quotas and limits as a SASL login does. Until it has, nothing the client sent is read; a
certificate that maps to no user closes the connection (Kafka's SslAuthenticationException is a
disconnect as well), and the log says which subject was refused.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from cryptography import x509

from tenantry.proxy.outcomes import Close
from tenantry.proxy.stages.login import admit
from tenantry.tenants.auth import Principal
from tenantry.tenants.principal_rules import PrincipalRule, map_principal

if TYPE_CHECKING:
    from tenantry.proxy.connection import ClientConnection

MECHANISM = "SSL"  # the principal's "mechanism" in logs and metrics, as Kafka names the listener
LOGGING_IN = "logging in with a certificate"


def subject_of(transport: asyncio.BaseTransport) -> str | None:
    """The peer certificate's subject in RFC 2253 form (most specific first, as Java prints it)."""
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


def start(conn: ClientConnection, transport: asyncio.BaseTransport, rules: tuple[PrincipalRule, ...]) -> None:
    """Log `conn` in by its certificate; reading waits until the tenant's quotas have admitted it."""
    subject = subject_of(transport)
    name = map_principal(rules, subject) if subject is not None else None
    found = conn.server.login_registry().lookup(name) if name is not None else None
    auth = conn.context.auth
    stats = conn.meter.stats
    if found is None or auth is None:
        stats.tenant("").authentications[(MECHANISM, "failure")] += 1  # as SASL counts unknown users
        conn.log.warning("refused the client certificate of %s: subject %r maps to %s", conn.peer, subject,
                         f"user {name!r}, who is no tenant's user" if name is not None else "no user")
        conn.close("client certificate of no user")
        return
    tenant, user = found
    stats.tenant(tenant.id).authentications[(MECHANISM, "success")] += 1
    auth.certificate(Principal(tenant, user, MECHANISM))
    conn.gate.block(LOGGING_IN)
    task = asyncio.get_running_loop().create_task(admit(conn.context))
    task.add_done_callback(lambda done: _admitted(conn, done))


def _admitted(conn: ClientConnection, task: asyncio.Task[object]) -> None:
    error = None if task.cancelled() else task.exception()
    outcome = None if task.cancelled() or error is not None else task.result()
    if conn.closed:
        return
    if error is not None or task.cancelled():
        conn.log.error("certificate login of %s failed", conn.peer, exc_info=error)
        conn.close("internal error")
    elif isinstance(outcome, Close):
        conn.close(outcome.reason)
    else:
        conn.gate.unblock(LOGGING_IN)
