"""Per-tenant quotas: what the config file says, and the live token buckets that enforce it.

A quota covers all of a tenant's connections to this proxy. A user may have its own, tighter quota
inside its tenant; its traffic then counts against both, and the longer delay applies. Rates left
unset are unlimited, unless the proxy-wide auto-tuner (:mod:`.autotune`) gives the tenant a share.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tenantry.tenants.token_bucket import Clock, TokenBucket

PRODUCE, FETCH, REQUESTS, CONNECTIONS = "produce", "fetch", "requests", "connections"
RATE_KEYS = {
    PRODUCE: "produce_bytes_per_sec",
    FETCH: "fetch_bytes_per_sec",
    REQUESTS: "requests_per_sec",
    CONNECTIONS: "connections_per_sec",
}
#: Seconds of the rate a bucket holds by default: how long a tenant may run above its rate after a pause.
DEFAULT_BURST_SECONDS = 1.0


class QuotaError(ValueError):
    """A quota setting is invalid; the message names it and says what is allowed."""


@dataclass(frozen=True)
class QuotaSpec:
    produce_bytes_per_sec: float | None = None
    fetch_bytes_per_sec: float | None = None
    requests_per_sec: float | None = None
    connections_per_sec: float | None = None
    max_connections: int | None = None
    burst_seconds: float = DEFAULT_BURST_SECONDS

    def rate(self, resource: str) -> float | None:
        value: float | None = getattr(self, RATE_KEYS[resource])
        return value

    @classmethod
    def from_dict(cls, where: str, data: dict[str, Any]) -> QuotaSpec:
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise QuotaError(f"{where}: unknown quota {key!r} (known: {', '.join(sorted(known))})")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise QuotaError(f"{where}: {key} must be a positive number, not {value!r}")
            if key == "max_connections" and not isinstance(value, int):
                raise QuotaError(f"{where}: max_connections must be a whole number, not {value!r}")
            values[key] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not (f.name == "burst_seconds" and value == DEFAULT_BURST_SECONDS):
                out[f.name] = value
        return out


class Meters:
    """The live buckets of one tenant and of those of its users that have their own quota.

    `used` counts every byte, request and connection, limited or not, so the auto-tuner can measure
    demand. `tuned` holds the auto-tuner's share per resource; the enforced rate is the lower of the
    configured quota and the share.
    """

    def __init__(self, spec: QuotaSpec, user_specs: dict[str, QuotaSpec], clock: Clock) -> None:
        self.clock = clock
        self.spec = spec
        self.user_specs = user_specs
        self.tuned: dict[str, float] = {}
        self.used: dict[str, float] = dict.fromkeys(RATE_KEYS, 0.0)
        self.last_traffic = float("-inf")  # when it last produced or fetched: idle tenants are not tuned
        self.connections = 0
        self.user_connections: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._user_buckets: dict[tuple[str, str], TokenBucket] = {}
        self._build(clock())

    def _build(self, now: float) -> None:
        old, old_users = self._buckets, self._user_buckets
        self._buckets, self._user_buckets = {}, {}
        for resource in RATE_KEYS:
            rate = self.effective_rate(resource)
            if rate is not None:
                self._buckets[resource] = _bucket(old.get(resource), rate, self.spec.burst_seconds, now)
            for user, spec in self.user_specs.items():
                user_rate = spec.rate(resource)
                if user_rate is not None:
                    key = (user, resource)
                    self._user_buckets[key] = _bucket(old_users.get(key), user_rate, spec.burst_seconds, now)

    def effective_rate(self, resource: str) -> float | None:
        configured, tuned = self.spec.rate(resource), self.tuned.get(resource)
        if configured is None or tuned is None:
            return configured if tuned is None else tuned
        return min(configured, tuned)

    def reconfigure(self, spec: QuotaSpec, user_specs: dict[str, QuotaSpec]) -> None:
        """New quotas from a config reload, applied to the live buckets (debt is kept)."""
        self.spec, self.user_specs = spec, user_specs
        self._build(self.clock())

    def retune(self, tuned: dict[str, float]) -> None:
        if tuned != self.tuned:
            self.tuned = tuned
            self._build(self.clock())

    def record(self, resource: str, user: str, amount: float) -> float:
        """Count usage against the tenant's and the user's bucket; the delay in seconds it earned."""
        now = self.clock()
        self.used[resource] += amount
        if resource in (PRODUCE, FETCH):
            self.last_traffic = now
        delay = 0.0
        bucket = self._buckets.get(resource)
        if bucket is not None:
            delay = bucket.record(amount, now)
        user_bucket = self._user_buckets.get((user, resource))
        if user_bucket is not None:
            delay = max(delay, user_bucket.record(amount, now))
        return delay

    def debt(self, resource: str, user: str) -> float:
        """The delay still owed for `resource` by this user, without using anything."""
        now = self.clock()
        delay = 0.0
        for bucket in (self._buckets.get(resource), self._user_buckets.get((user, resource))):
            if bucket is not None:
                delay = max(delay, bucket.delay(now))
        return delay

    def open_connection(self, user: str) -> str | None:
        """Count a new connection of `user`; if a limit is reached, count nothing and say which."""
        limit = self.spec.max_connections
        if limit is not None and self.connections >= limit:
            return f"the tenant's max_connections is {limit} and it has {self.connections} open"
        user_spec = self.user_specs.get(user)
        user_limit = user_spec.max_connections if user_spec else None
        in_use = self.user_connections.get(user, 0)
        if user_limit is not None and in_use >= user_limit:
            return f"user {user}'s max_connections is {user_limit} and it has {in_use} open"
        self.connections += 1
        self.user_connections[user] = in_use + 1
        return None

    def close_connection(self, user: str) -> None:
        self.connections -= 1
        left = self.user_connections.get(user, 1) - 1
        if left > 0:
            self.user_connections[user] = left
        else:
            self.user_connections.pop(user, None)


def _bucket(old: TokenBucket | None, rate: float, burst_seconds: float, now: float) -> TokenBucket:
    if old is None:
        return TokenBucket(rate, rate * burst_seconds, now)
    old.retune(rate, rate * burst_seconds, now)
    return old
