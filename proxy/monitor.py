"""Once a second: how late the event loop runs (its lag), and each tenant's recent quota use.

The lag is how much later than asked a sleep returns: everything the loop does (every request of
every client) waits that long too. Quota use is sampled into a sliding window so `tenantry status`
and the utilisation metric read a rate over the last `window` seconds, not a lifetime average.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.stats import Stats

Snapshot = dict[str, dict[str, float]]  # tenant -> resource -> used so far


class UsageWindow:
    """Rates of each tenant's quota use over the last `window` seconds, from samples of the meters."""

    def __init__(self, quotas: QuotaBook, window: float = 10.0) -> None:
        self.quotas = quotas
        self.window = window
        self._samples: deque[tuple[float, Snapshot]] = deque()

    def sample(self, now: float) -> None:
        self._samples.append((now, {t: dict(m.used) for t, m in self.quotas.meters.items()}))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rates(self) -> dict[str, dict[str, float]]:
        """tenant -> resource -> units per second over the window (empty until two samples exist)."""
        if len(self._samples) < 2:
            return {}
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        span = t1 - t0
        out: dict[str, dict[str, float]] = {}
        for tenant, used in last.items():
            before = first.get(tenant, {})
            out[tenant] = {r: max(v - before.get(r, 0.0), 0.0) / span for r, v in used.items()}
        return out

    def utilisation(self) -> dict[tuple[str, str], float]:
        """(tenant, resource) -> recent rate / enforced rate, for every quota that is limited."""
        out = {}
        for tenant, rates in self.rates().items():
            meters = self.quotas.meters.get(tenant)
            if meters is None:
                continue
            for resource, rate in rates.items():
                limit = meters.effective_rate(resource)
                if limit:
                    out[(tenant, resource)] = rate / limit
        return out


async def watch(stats: Stats, usage: UsageWindow, interval: float = 1.0) -> None:
    while True:
        start = time.perf_counter()
        await asyncio.sleep(interval)
        lag = max(time.perf_counter() - start - interval, 0.0)
        stats.loop_lag.observe(lag)
        stats.loop_lag_last = lag
        usage.sample(time.monotonic())
