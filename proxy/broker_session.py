"""A client connection's link to its broker: opened with the first request that needs it, waited on while
the proxy logs in to the broker again (KIP-368), closed with the client. States: :mod:`.connection_state`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tenantry.proxy.connection_state import BrokerState, move
from tenantry.proxy.upstream import UpstreamConnection, UpstreamError

log = logging.getLogger("tenantry.connection")


class BrokerSession:
    def __init__(self, connect: Callable[[], Awaitable[UpstreamConnection]], on_open: Callable[[], None],
                 on_failed: Callable[[str], None], client_closed: Callable[[], bool]) -> None:
        self.upstream: UpstreamConnection | None = None
        self.state = BrokerState.NONE
        self._connect = connect
        self._on_open = on_open
        self._on_failed = on_failed
        self._client_closed = client_closed
        self._ready: asyncio.Future[None] | None = None

    def ready(self) -> Coroutine[Any, Any, None] | None:
        """None if a request can go to the broker now, else a coroutine that returns once it can."""
        if self.state is BrokerState.OPEN:
            return None
        if self.state is BrokerState.NONE:
            self.open()
        assert self._ready is not None
        return _wait(self._ready)

    def open(self) -> None:
        self.state = move(self.state, BrokerState.CONNECTING)
        self._ready = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        try:
            upstream = await self._connect()
        except UpstreamError as exc:
            self.state = move(self.state, BrokerState.LOST)
            self._on_failed(f"cannot reach the broker: {exc}")
            return
        except Exception:  # a bug must cost this connection, never leave it waiting or an exception unretrieved
            log.exception("opening a broker connection failed")
            self.state = move(self.state, BrokerState.LOST)
            self._on_failed("internal error while opening the broker connection")
            return
        if self._client_closed():
            upstream.owner = None
            upstream.close()
            return
        self.upstream = upstream
        self._is_ready()
        self._on_open()

    def _is_ready(self) -> None:
        self.state = move(self.state, BrokerState.OPEN)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def reauthenticating(self, running: bool) -> None:
        """KIP-368 at the broker: requests wait at the pipeline's broker stage until it is done."""
        if running:
            self.state = move(self.state, BrokerState.REAUTHENTICATING)
            self._ready = asyncio.get_running_loop().create_future()
        else:
            self._is_ready()

    def close(self) -> None:
        if self.upstream is not None:
            self.upstream.owner = None
            self.upstream.close()


async def _wait(ready: asyncio.Future[None]) -> None:
    await asyncio.shield(ready)  # shielded: one waiter's cancellation must not cancel the others' future
