"""Liveness and readiness, and the state of each upstream broker.

Every `health_check_interval_seconds` the proxy opens a connection to each broker it knows, as it
would for a client (ApiVersions and its own SASL login), and closes it. Ready means: started (the
upstream cluster answered at least once, so the client listener is open), serving (not draining for a
shutdown), a listener open for every broker (a port that could not be had is retried at each check),
and at least one bootstrap server answered the last check, so a new client can get in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from tenantry.proxy.stats import BOOTSTRAP
from tenantry.proxy.upstream import UpstreamConnection, UpstreamError

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.health")


class Health:
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.upstream_ok = False
        self.started_up = False  # the upstream answered at start, and the client listener opened
        self.errors: dict[str, str] = {}  # broker -> why its last check failed
        self.listener_failures: dict[int, str] = {}  # broker -> why its listener could not open
        self.checked_at = 0.0

    def starting(self, error: str) -> None:
        """The upstream cluster did not answer at start: not ready, and /readyz says why."""
        self.errors["bootstrap"] = error
        self.checked_at = time.time()

    def started(self) -> None:
        self.errors.pop("bootstrap", None)
        self.upstream_ok = self.started_up = True

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.server.config.health_check_interval_seconds)
            await self.check()

    async def check(self) -> None:
        server = self.server
        if self.listener_failures:
            pending = server.retry_listeners()
            if pending is not None:
                await pending
        targets = [(BOOTSTRAP, a) for a in server.config.upstream_addresses()]
        targets += [(str(node), address) for node, address in sorted(server.brokers.items())]
        results = await asyncio.gather(*(self._check_one(label, host, port) for label, (host, port) in targets))
        bootstrap_up: list[bool] = []
        for (label, _), up in zip(targets, results, strict=True):
            if label == BOOTSTRAP:
                bootstrap_up.append(up)
            else:
                server.stats.brokers[label].up = up
        server.stats.brokers[BOOTSTRAP].up = any(bootstrap_up)
        if self.upstream_ok != any(bootstrap_up):
            (log.info if any(bootstrap_up) else log.error)(
                "upstream %s: %s", "reachable again" if any(bootstrap_up) else "unreachable",
                "; ".join(self.errors.values()) or "all bootstrap servers answered")
        self.upstream_ok = any(bootstrap_up)
        self.checked_at = time.time()

    async def _check_one(self, label: str, host: str, port: int) -> bool:
        key = f"{label} {host}:{port}"
        try:
            conn = await UpstreamConnection.open(self.server.config, self.server.memory, host, port, None,
                                                 tls=self.server.upstream_tls, tokens=self.server.upstream_tokens)
        except UpstreamError as exc:
            self.errors[key] = str(exc)
            return False
        self.server.learn_features(conn.broker_versions)
        conn.close()
        self.errors.pop(key, None)
        return True

    @property
    def ready(self) -> bool:
        return self.started_up and self.upstream_ok and not self.server.draining and not self.listener_failures

    def readiness(self) -> dict[str, Any]:
        """Why the proxy is or is not ready, for /readyz."""
        return {
            "ready": self.ready,
            "config_loaded": True,
            "draining": self.server.draining,
            "started": self.started_up,
            "upstream_reachable": self.upstream_ok,
            "upstream_errors": sorted(self.errors.values()),
            "broker_listeners_failed": {str(node): why for node, why in sorted(self.listener_failures.items())},
            # Each broker the cluster named: where it is upstream, its port here, and whether the last check
            # reached it. One broker down leaves the proxy ready: clients move to the partitions' new leaders.
            "brokers": {str(node): {"upstream": f"{host}:{port}", "port": self.server.config.broker_port(node),
                                    "up": self.server.stats.brokers[str(node)].up}
                        for node, (host, port) in sorted(self.server.brokers.items())},
            "last_check": self.checked_at or None,
        }
