"""The proxy's counters: plain numbers the hot path bumps, read by the Prometheus collector at scrape time.

prometheus-client's own metric objects take a lock and look up their labels on every update; a
proxy forwarding thousands of requests a second keeps cheaper counters of its own instead
(:mod:`tenantry.proxy.metrics` renders them). Label sets stay bounded: tenants come from the config,
APIs and error codes from Kafka's lists, brokers from the cluster. Client ids and topics, which
clients choose, are kept only when turned on, and then at most `limit` of each per tenant, the rest
counted as ``other``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

#: Seconds. From well under a millisecond (a local answer) to the ten seconds a throttle may last.
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OTHER = "other"
BOOTSTRAP = "bootstrap"  # the broker label of connections made before a broker is known


class Histogram:
    """Observations counted into fixed buckets (non-cumulative here; the collector adds them up)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def copy(self) -> Histogram:
        twin = Histogram(self.bounds)
        twin.counts, twin.total = list(self.counts), self.total
        return twin

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs as Prometheus wants them, ending with +Inf."""
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class Traffic:
    """Bytes, records and requests of one client id or one topic."""

    __slots__ = ("bytes_in", "bytes_out", "records_in", "requests")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.records_in = 0
        self.requests = 0

    def copy(self) -> Traffic:
        twin = Traffic()
        twin.bytes_in, twin.bytes_out, twin.records_in, twin.requests = (
            self.bytes_in, self.bytes_out, self.records_in, self.requests)
        return twin


class CappedLabels:
    """Traffic by a label that clients choose, for at most `limit` distinct values (the rest: ``other``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.values: dict[str, Traffic] = {}

    def get(self, value: str) -> Traffic:
        found = self.values.get(value)
        if found is None:
            if len(self.values) >= self.limit:
                value = OTHER
                found = self.values.get(OTHER)
            if found is None:
                found = self.values[value] = Traffic()
        return found

    def copy(self) -> CappedLabels:
        twin = CappedLabels(self.limit)
        twin.values = {k: v.copy() for k, v in self.values.items()}
        return twin


class TenantStats:
    """Everything counted for one tenant ("" for connections not logged in, or with tenants off)."""

    def __init__(self, label_limit: int = 0) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.records_in = 0
        self.requests: defaultdict[int, int] = defaultdict(int)  # by API key
        self.errors: defaultdict[tuple[int, int], int] = defaultdict(int)  # by (API key, error code)
        self.proxy_latency = Histogram()  # time a request spent in the proxy, both ways
        self.upstream_latency = Histogram()  # from forwarding a request to its response arriving
        self.throttle_seconds: defaultdict[str, float] = defaultdict(float)  # by quota
        self.throttled: defaultdict[str, int] = defaultdict(int)
        self.connections_opened = 0
        self.connections_closed = 0
        self.connections_refused: defaultdict[str, int] = defaultdict(int)  # by limit
        self.connections_aged_out = 0
        self.authentications: defaultdict[tuple[str, str], int] = defaultdict(int)  # (mechanism, result)
        self.authorization_failures: defaultdict[tuple[str, str], int] = defaultdict(int)  # (api, resource type)
        self.records_sealed = 0  # record encryption: records sealed on produce, opened on fetch
        self.records_opened = 0
        self.encryption_failures: defaultdict[str, int] = defaultdict(int)  # by what failed: seal, open
        self.client_ids = CappedLabels(label_limit) if label_limit else None
        self.topics = CappedLabels(label_limit) if label_limit else None

    def copy(self) -> TenantStats:
        """A copy to render from another thread while this one goes on counting."""
        twin = TenantStats.__new__(TenantStats)
        for name, value in vars(self).items():
            if isinstance(value, (Histogram, CappedLabels, defaultdict)):
                value = value.copy()
            setattr(twin, name, value)
        return twin


class BrokerStats:
    """The proxy's connections to one upstream broker ("bootstrap" before a broker is known)."""

    def __init__(self) -> None:
        self.connects = 0
        self.errors: defaultdict[str, int] = defaultdict(int)  # by kind: connect, lost, protocol
        self.up: bool | None = None  # the last health check's answer; None until the first one


class Stats:
    def __init__(self, label_limit: int = 0) -> None:
        self.label_limit = label_limit
        self.tenants: dict[str, TenantStats] = {}
        self.api_proxy_latency: defaultdict[int, Histogram] = defaultdict(Histogram)
        self.api_upstream_latency: defaultdict[int, Histogram] = defaultdict(Histogram)
        self.brokers: defaultdict[str, BrokerStats] = defaultdict(BrokerStats)
        self.accepted = 0
        self.loop_lag = Histogram()
        self.loop_lag_last = 0.0
        self.reloads: defaultdict[str, int] = defaultdict(int)  # by result: ok, refused

    def tenant(self, tenant_id: str) -> TenantStats:
        found = self.tenants.get(tenant_id)
        if found is None:
            found = self.tenants[tenant_id] = TenantStats(self.label_limit)
        return found

    def copy(self) -> Stats:
        """A copy to render from another thread (about 10 µs per tenant, taken on the event loop)."""
        twin = Stats(self.label_limit)
        twin.tenants = {k: v.copy() for k, v in self.tenants.items()}
        for src, dst in ((self.api_proxy_latency, twin.api_proxy_latency),
                         (self.api_upstream_latency, twin.api_upstream_latency)):
            dst.update({k: h.copy() for k, h in src.items()})
        for broker, b in self.brokers.items():
            copied = twin.brokers[broker]
            copied.connects, copied.errors, copied.up = b.connects, b.errors.copy(), b.up
        twin.accepted, twin.loop_lag, twin.loop_lag_last = self.accepted, self.loop_lag.copy(), self.loop_lag_last
        twin.reloads = self.reloads.copy()
        return twin

    def forget_tenants(self, keep: set[str]) -> None:
        """Drop removed tenants' series, so a tenant's churn does not grow the scrape forever."""
        for tenant_id in list(self.tenants):
            if tenant_id and tenant_id not in keep:
                del self.tenants[tenant_id]
