"""One TLS port for every broker: the name a client asks for in its TLS handshake (SNI) picks the broker.

With ``sni_broker_host_pattern = "broker-{id}.kafka.example.com"`` the proxy advertises broker N as
``broker-N.kafka.example.com`` on its listen port, and a connection whose handshake names that host is
served by broker N; any other name (the bootstrap name) is the bootstrap. Clients send the host they
connect to as SNI, so a Kubernetes ingress or a load balancer in TCP passthrough needs one port and one
wildcard DNS record instead of a port per broker.
"""

from __future__ import annotations

import asyncio
import re
import ssl

BOOTSTRAP_NAME = None  # a handshake naming no broker


class BrokerNames:
    """The pattern of brokers' host names, both ways: node id to name, and name to node id."""

    def __init__(self, pattern: str) -> None:
        if pattern.count("{id}") != 1:
            raise ValueError(f"{pattern!r} must hold {{id}} once, where the broker's id goes")
        self.pattern = pattern
        before, after = pattern.lower().split("{id}")
        self._parse = re.compile(re.escape(before) + r"(\d{1,9})" + re.escape(after))

    def host(self, node_id: int) -> str:
        return self.pattern.replace("{id}", str(node_id))

    def node(self, server_name: str | None) -> int | None:
        """The broker a handshake's server name asks for; None for any other name (the bootstrap)."""
        if not server_name:
            return None
        match = self._parse.fullmatch(server_name.lower().rstrip("."))
        return int(match.group(1)) if match else None

    def install(self, context: ssl.SSLContext) -> None:
        """Remember, on each TLS connection, which broker its handshake named (read by :func:`node_of`)."""
        def remember(ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                     _context: ssl.SSLContext) -> None:
            ssl_object.tenantry_node = self.node(server_name)  # type: ignore[union-attr]
        context.sni_callback = remember


def node_of(transport: asyncio.BaseTransport) -> int | None:
    """The broker this TLS connection's handshake asked for (None: the bootstrap)."""
    return getattr(transport.get_extra_info("ssl_object"), "tenantry_node", BOOTSTRAP_NAME)
