"""Proxy-wide capacity shared out among the active tenants (Confluent Cloud's auto-tuning).

While the active tenants' configured quotas fit within the proxy-wide capacity, nobody is tuned. When
they do not, every interval each active tenant gets a fair share of the capacity in proportion to its
configured quota. A tenant using less than its share is given a little more than it uses (so growth is
seen next interval) and the rest goes to the tenants that want more. A tenant with no traffic for
`idle_after` seconds is left out and gets its configured quota back.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenantry.tenants.quotas import CONNECTIONS, FETCH, PRODUCE, Meters
from tenantry.tenants.token_bucket import Clock

HEADROOM = 1.1  # a light tenant's share: this much above what it used
PINNED = 0.9  # using this much of its current limit means the tenant wants more
FLOOR = 0.05  # of its quota: an active tenant is never tuned below this


@dataclass(frozen=True)
class Demand:
    quota: float  # configured, or the whole capacity for a tenant without one: the weight of its share
    used: float  # measured rate over the last interval
    limit: float  # the rate it was held to over that interval


def fair_shares(capacity: float, demands: dict[str, Demand]) -> dict[str, float]:
    """Each tenant's rate so that together they stay within `capacity` (weighted max-min fairness)."""
    if sum(d.quota for d in demands.values()) <= capacity:
        return {t: d.quota for t, d in demands.items()}
    wants = {t: d.quota if d.used >= PINNED * d.limit else min(d.quota, max(d.used * HEADROOM, FLOOR * d.quota))
             for t, d in demands.items()}
    shares: dict[str, float] = {}
    remaining, open_ = capacity, set(demands)
    while open_:
        weight = sum(demands[t].quota for t in open_)
        fair = {t: remaining * demands[t].quota / weight for t in open_}
        satisfied = {t for t in open_ if wants[t] <= fair[t]}
        if not satisfied:
            shares.update(fair)
            return shares
        for t in satisfied:
            shares[t] = wants[t]
            remaining -= wants[t]
        open_ -= satisfied
    # Everyone got what it wants and capacity is left: spread it so a burst is not throttled at once.
    spare = max(0.0, remaining)
    room = {t: demands[t].quota - shares[t] for t in shares}
    total_room = sum(room.values())
    if spare > 0 and total_room > 0:
        for t in shares:
            shares[t] += min(room[t], spare * room[t] / total_room)
    return shares


class AutoTuner:
    """Keeps the tenants' tuned rates within the proxy-wide capacities; call :meth:`tick` every interval."""

    RESOURCES = (PRODUCE, FETCH, CONNECTIONS)

    def __init__(self, capacity: dict[str, float], idle_after: float, clock: Clock) -> None:
        self.capacity = {r: c for r, c in capacity.items() if c}
        self.idle_after = idle_after
        self.clock = clock
        self._last: dict[str, tuple[float, dict[str, float]]] = {}  # tenant -> (time, used) at the last tick

    def tick(self, meters: dict[str, Meters]) -> dict[str, dict[str, float]]:
        """Measure each tenant, share out the capacities, apply and return the tuned rates."""
        now = self.clock()
        rates: dict[str, dict[str, float]] = {}
        for tenant, m in meters.items():
            then, used = self._last.get(tenant, (now, m.used))
            elapsed = now - then
            rates[tenant] = {r: (m.used[r] - used[r]) / elapsed if elapsed > 0 else 0.0 for r in self.RESOURCES}
        self._last = {tenant: (now, dict(m.used)) for tenant, m in meters.items()}
        active = {t for t, m in meters.items() if now - m.last_traffic <= self.idle_after}
        tuned: dict[str, dict[str, float]] = {t: {} for t in meters}
        for resource, capacity in self.capacity.items():
            demands = {}
            for t in active:
                quota = meters[t].spec.rate(resource) or capacity
                limit = meters[t].effective_rate(resource) or quota
                demands[t] = Demand(quota, rates[t][resource], limit)
            for t, share in fair_shares(capacity, demands).items():
                if share < (meters[t].spec.rate(resource) or float("inf")):
                    tuned[t][resource] = share
        for tenant, m in meters.items():
            m.retune(tuned[tenant])
        return tuned
