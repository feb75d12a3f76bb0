"""Per-tenant quotas: what the config file says, and the live token buckets that enforce it.

A quota covers all of a tenant's connections to this proxy. A user may have its own, tighter quota
inside its tenant; its traffic then counts against both, and the longer delay applies. Rates left
unset are unlimited, unless the proxy-wide auto-tuner (:mod:`.autotune`) gives the tenant a share.

With fleet coordination (:mod:`.fleet_shares`) a replica enforces only its slice of each configured
limit. Every limit has a fleet name: the resource ("produce", "max_connections"), or the resource and
the user ("produce/alice") for a user's own; `slices` holds this replica's slice by that name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tenantry.tenants.token_bucket import Clock, TokenBucket

PRODUCE, FETCH, REQUESTS, CONNECTIONS = "produce", "fetch", "requests", "connections"
MAX_CONNECTIONS = "max_connections"
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
    configured quota (or this replica's slice of it) and the share. `held` counts, by fleet name, the
    times a limit delayed a request or refused a connection: where the fleet should move the slices.
    """

    def __init__(self, spec: QuotaSpec, user_specs: dict[str, QuotaSpec], clock: Clock) -> None:
        self.clock = clock
        self.spec = spec
        self.user_specs = user_specs
        self.tuned: dict[str, float] = {}
        self.slices: dict[str, float] = {}
        self.used: dict[str, float] = dict.fromkeys(RATE_KEYS, 0.0)
        self.user_used: dict[str, float] = {}  # by fleet name, for the users with a rate of their own
        self.held: dict[str, int] = {}
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
                    user_rate = self.slices.get(f"{resource}/{user}", user_rate)
                    self._user_buckets[key] = _bucket(old_users.get(key), user_rate, spec.burst_seconds, now)

    def effective_rate(self, resource: str) -> float | None:
        configured, tuned = self.spec.rate(resource), self.tuned.get(resource)
        if configured is not None:
            configured = self.slices.get(resource, configured)
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

    def reslice(self, slices: dict[str, float]) -> None:
        """This replica's slices of the tenant's limits, by fleet name (empty: the whole limits)."""
        if slices != self.slices:
            self.slices = slices
            self._build(self.clock())

    def limits(self) -> dict[str, float]:
        """Every configured limit, by fleet name: what the fleet shares out over its replicas."""
        out: dict[str, float] = {}
        for name, spec in [("", self.spec), *((f"/{user}", spec) for user, spec in self.user_specs.items())]:
            for resource in RATE_KEYS:
                rate = spec.rate(resource)
                if rate is not None:
                    out[resource + name] = rate
            if spec.max_connections is not None:
                out[MAX_CONNECTIONS + name] = spec.max_connections
        return out

    def counters(self) -> dict[str, float]:
        """What the tenant has used so far, by fleet name: totals for rates, open connections for counts."""
        out = {**self.used, **self.user_used, MAX_CONNECTIONS: self.connections}
        for user, count in self.user_connections.items():
            out[f"{MAX_CONNECTIONS}/{user}"] = count
        return out

    def _held(self, name: str) -> None:
        self.held[name] = self.held.get(name, 0) + 1

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
            if delay > 0:
                self._held(resource)
        user_bucket = self._user_buckets.get((user, resource))
        if user_bucket is not None:
            name = f"{resource}/{user}"
            self.user_used[name] = self.user_used.get(name, 0.0) + amount
            user_delay = user_bucket.record(amount, now)
            if user_delay > 0:
                self._held(name)
            delay = max(delay, user_delay)
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
        if limit is not None and self.connections >= self.slices.get(MAX_CONNECTIONS, limit):
            self._held(MAX_CONNECTIONS)
            return (f"the tenant's max_connections is {limit}{self._here(MAX_CONNECTIONS)} and it has "
                    f"{self.connections} open")
        user_spec = self.user_specs.get(user)
        user_limit = user_spec.max_connections if user_spec else None
        in_use = self.user_connections.get(user, 0)
        name = f"{MAX_CONNECTIONS}/{user}"
        if user_limit is not None and in_use >= self.slices.get(name, user_limit):
            self._held(name)
            return f"user {user}'s max_connections is {user_limit}{self._here(name)} and it has {in_use} open"
        self.connections += 1
        self.user_connections[user] = in_use + 1
        return None

    def _here(self, name: str) -> str:
        return f" ({self.slices[name]:g} of them on this replica)" if name in self.slices else ""

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
