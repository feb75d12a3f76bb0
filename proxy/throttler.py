"""One client connection's side of its tenant's quotas: count its traffic, say what it owes, mute it."""

from __future__ import annotations

import asyncio

from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.proxy.flow import ReadGate
from tenantry.proxy.stats import TenantStats
from tenantry.tenants.quotas import FETCH, PRODUCE, REQUESTS, Meters

MUTED = "throttled"


class Throttler:
    """Records a connection's requests and bytes against its tenant's (and user's) buckets.

    Every delay it returns is capped at `max_delay`: a debt larger than that is owed by the requests
    that follow, so no single response waits longer than a client's request timeout allows.
    """

    def __init__(self, meters: Meters, user: str, gate: ReadGate, max_delay: float,
                 stats: TenantStats | None = None) -> None:
        self.meters = meters
        self.stats = stats
        self.user = user
        self.gate = gate
        self.max_delay = max_delay
        self._muted_until = 0.0
        self._unmute: asyncio.TimerHandle | None = None

    def on_request(self, api_key: int, size: int) -> float:
        delay, quota = self.meters.record(REQUESTS, self.user, 1), REQUESTS
        if api_key == ApiKey.PRODUCE and (produce := self.meters.record(PRODUCE, self.user, size)) > delay:
            delay, quota = produce, PRODUCE
        return self._charge(quota, delay)

    def fetch_debt(self) -> float:
        """Above 0, the tenant owes fetch bandwidth: answer the Fetch empty, with this delay."""
        debt = self.meters.debt(FETCH, self.user)
        return self._charge(FETCH, debt) if debt > 0 else 0.0

    def on_fetch_response(self, size: int) -> float:
        return self._charge(FETCH, self.meters.record(FETCH, self.user, size))

    def _charge(self, quota: str, delay: float) -> float:
        """The delay, capped; counted as throttle time of `quota` (summed over the tenant's requests)."""
        delay = min(delay, self.max_delay)
        if delay > 0 and self.stats is not None:
            self.stats.throttle_seconds[quota] += delay
            self.stats.throttled[quota] += 1
        return delay

    def mute(self, seconds: float) -> None:
        """Stop reading from the client for `seconds` (or until an earlier mute ends, if later)."""
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        if until <= self._muted_until:
            return
        self._muted_until = until
        if self._unmute is not None:
            self._unmute.cancel()
        self.gate.block(MUTED)
        self._unmute = loop.call_at(until, self.gate.unblock, MUTED)

    def close(self) -> None:
        if self._unmute is not None:
            self._unmute.cancel()
            self._unmute = None
        self.meters.close_connection(self.user)
