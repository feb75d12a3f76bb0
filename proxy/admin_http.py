"""The operators' HTTP listener: /metrics for Prometheus, /healthz and /readyz for probes, /status for
`tenantry status`, and POST /reload for `tenantry reload` (re-reads the config file, as SIGHUP does, and
answers once it is applied: a script can change a quota and know the next request meets it).

It runs on the proxy's event loop (aiohttp), so a scrape reads the counters between two requests,
never in the middle of one. /healthz answering at all shows the loop is alive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from tenantry.proxy.metrics import render, take_view
from tenantry.proxy.status import snapshot

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.admin")


class AdminListener:
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/status", self.status)
        app.router.add_post("/reload", self.reload)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, reuse_address=True).start()
        log.info("metrics and health on http://%s:%d (/metrics /healthz /readyz /status, POST /reload)", host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def metrics(self, request: web.Request) -> web.Response:
        view = take_view(self.server)
        body = await asyncio.get_running_loop().run_in_executor(None, render, view)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True, "event_loop_lag_seconds": self.server.stats.loop_lag_last})

    async def reload(self, request: web.Request) -> web.Response:
        from tenantry.proxy.reload import reload_config

        path = self.server.config_path
        if path is None:
            return web.json_response({"reloaded": False, "error": "the proxy runs without a config file"}, status=409)
        applied = reload_config(self.server, path)
        return web.json_response({"reloaded": applied, "file": str(path)}, status=200 if applied else 422)

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = self.server.health.readiness()
        return web.json_response(readiness, status=200 if readiness["ready"] else 503)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(snapshot(self.server))
