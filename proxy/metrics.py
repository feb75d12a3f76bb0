"""Prometheus metrics: the proxy's counters (:mod:`.stats`) and live state, rendered at scrape time.

A scrape copies what it shows on the event loop (:func:`take_view`, about 10 µs per tenant) and
renders the text in a worker thread (:func:`render`): with a thousand tenants the rendering takes
most of a second, which the loop's other clients must not wait for.

Every series is listed in the README's metrics table; ``deploy/`` (the Grafana dashboard and the
alert rules) uses only these names, and a test checks that it does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tenantry.protocol.messages import API_NAMES
from tenantry.protocol.messages.error_names import ERROR_NAMES
from tenantry.protocol.scanner import SCANNER
from tenantry.proxy.stats import Histogram, Stats

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

VERSION = "0.1.0"
# Label values every tenant or broker has, served at 0 before anything happens: a rate() over a
# series that appears only with its first event misses that event, and an absent series looks like
# a broken exporter on a dashboard.
QUOTAS = ("produce", "fetch", "requests", "connections", "topic_mutations")
REFUSALS = ("max_connections", "connections_per_sec", "capacity_connections_per_sec", "unauthenticated_per_ip")
UPSTREAM_ERRORS = ("connect", "lost", "failed")
RELOADS = ("ok", "refused")


def api_name(key: int) -> str:
    return API_NAMES.get(key, str(key))


def _histogram(family: HistogramMetricFamily, labels: list[str], h: Histogram) -> None:
    family.add_metric(labels, h.cumulative(), h.total)


@dataclass
class MetricsView:
    """What /metrics shows, copied on the event loop so that another thread can render it."""

    stats: Stats
    active: dict[str, int]  # client connections by tenant
    upstream_connections: dict[str, int]  # by broker
    in_flight: dict[str, int]
    quota_used: dict[tuple[str, str], float]  # (tenant, quota)
    quota_limits: dict[tuple[str, str], float]
    utilisation: dict[tuple[str, str], float]
    probe: list[Metric]  # and quota coordination's: families their owners build on the event loop
    tenants: int
    ready: bool


def take_view(server: ProxyServer) -> MetricsView:
    """Copy everything the metrics show; on the event loop, so nothing changes while it is read."""
    stats = server.stats
    for tenant_id in server.registry.tenants:
        stats.tenant(tenant_id)  # configured tenants have series from the start, at zero
    active: dict[str, int] = dict.fromkeys(stats.tenants, 0)
    upstream_connections: dict[str, int] = dict.fromkeys(stats.brokers, 0)
    in_flight: dict[str, int] = dict.fromkeys(stats.brokers, 0)
    for conn in server.connections:
        active[conn.meter.tenant_id] = active.get(conn.meter.tenant_id, 0) + 1
        upstream = conn.upstream
        if upstream is not None and not upstream.closed:
            upstream_connections[upstream.broker] = upstream_connections.get(upstream.broker, 0) + 1
            in_flight[upstream.broker] = in_flight.get(upstream.broker, 0) + len(upstream.pending)
    used, limits = {}, {}
    for tenant_id, meters in server.quotas.meters.items():
        for resource, amount in meters.used.items():
            used[(tenant_id, resource)] = amount
            rate = meters.effective_rate(resource)
            if rate is not None:
                limits[(tenant_id, resource)] = rate
    return MetricsView(stats.copy(), active, upstream_connections, in_flight, used, limits,
                       server.usage.utilisation(), [*(server.probe.metrics() if server.probe else ()),
                                                    *(server.fleet.metrics() if server.fleet else ())],
                       len(server.registry.tenants), server.health.ready)


class ProxyCollector(Collector):
    def __init__(self, view: MetricsView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        stats = self.view.stats
        yield from self._tenants(stats)
        yield from self._connections()
        yield from self._quotas()
        yield from self._upstream(stats)
        yield from self._process(stats)
        yield from self.view.probe

    def _tenants(self, stats: Stats) -> Iterator[Metric]:
        c = CounterMetricFamily
        bytes_in = c("tenantry_bytes_in", "Request bytes received from clients.", labels=["tenant"])
        bytes_out = c("tenantry_bytes_out", "Response bytes sent to clients.", labels=["tenant"])
        records = c("tenantry_records_in", "Records produced, counted from record batch headers.", labels=["tenant"])
        requests = c("tenantry_requests", "Requests received, by API.", labels=["tenant", "api"])
        errors = c("tenantry_response_errors", "Error codes in responses (each one counts), by API and error.",
                   labels=["tenant", "api", "error"])
        latency = HistogramMetricFamily(
            "tenantry_request_latency_seconds",
            "Request latency: stage=proxy is time in the proxy (both ways), stage=upstream from forwarding "
            "to the broker's response; throttle delays are not included.", labels=["tenant", "stage"])
        throttle = c("tenantry_throttle_seconds", "Delay imposed by quotas, summed over requests.",
                     labels=["tenant", "quota"])
        throttled = c("tenantry_throttled_requests", "Requests and logins delayed by a quota.",
                      labels=["tenant", "quota"])
        opened = c("tenantry_connections_opened", "Client connections logged in to the tenant.", labels=["tenant"])
        closed = c("tenantry_connections_closed", "Client connections of the tenant that closed.", labels=["tenant"])
        refused = c("tenantry_connections_refused", "Connections refused by a connection limit.",
                    labels=["tenant", "limit"])
        aged = c("tenantry_connections_aged_out", "Connections closed at max_connection_age_seconds.",
                 labels=["tenant"])
        auth = c("tenantry_authentications", "Finished SASL logins; failures are counted under the tenant "
                 "of the claimed user if it exists, else tenant=\"\".", labels=["tenant", "mechanism", "result"])
        denied = c("tenantry_authorization_failures", "Requests (or items of them) the tenant's ACLs refused.",
                   labels=["tenant", "api", "resource_type"])
        for tenant_id, t in stats.tenants.items():
            bytes_in.add_metric([tenant_id], t.bytes_in)
            bytes_out.add_metric([tenant_id], t.bytes_out)
            records.add_metric([tenant_id], t.records_in)
            for key, n in t.requests.items():
                requests.add_metric([tenant_id, api_name(key)], n)
            for (key, code), n in t.errors.items():
                errors.add_metric([tenant_id, api_name(key), ERROR_NAMES.get(code, str(code))], n)
            _histogram(latency, [tenant_id, "proxy"], t.proxy_latency)
            _histogram(latency, [tenant_id, "upstream"], t.upstream_latency)
            for quota in QUOTAS:
                throttle.add_metric([tenant_id, quota], t.throttle_seconds.get(quota, 0.0))
                throttled.add_metric([tenant_id, quota], t.throttled.get(quota, 0))
            opened.add_metric([tenant_id], t.connections_opened)
            closed.add_metric([tenant_id], t.connections_closed)
            aged.add_metric([tenant_id], t.connections_aged_out)
            for limit in REFUSALS:
                refused.add_metric([tenant_id, limit], t.connections_refused.get(limit, 0))
            for (mechanism, result), n in t.authentications.items():
                auth.add_metric([tenant_id, mechanism, result], n)
            for (api, resource_type), n in t.authorization_failures.items():
                denied.add_metric([tenant_id, api, resource_type], n)
        yield from (bytes_in, bytes_out, records, requests, errors, latency, throttle, throttled, opened, closed,
                    refused, aged, auth, denied)
        yield from _encryption(stats)
        if stats.label_limit:
            yield from self._labelled(stats)
        yield self._api_latency(stats)

    @staticmethod
    def _labelled(stats: Stats) -> Iterator[Metric]:
        """Traffic by client id and by produced topic, capped at metrics_label_limit values per tenant."""
        # Topics are counted from Produce requests alone: Fetch responses are not scanned per topic.
        labelled = {"client_id": ("by client id", ("bytes_in", "bytes_out", "records_in", "requests")),
                    "topic": ("by produced topic", ("bytes_in", "records_in"))}
        extra = {
            (kind, what): CounterMetricFamily(
                f"tenantry_{kind}_{what}", f"{what.replace('_', ' ').capitalize()} {by} "
                f"(metrics_label_limit per tenant).", labels=["tenant", kind])
            for kind, (by, counted) in labelled.items() for what in counted
        }
        for tenant_id, t in stats.tenants.items():
            for kind, capped in (("client_id", t.client_ids), ("topic", t.topics)):
                for value, traffic in (capped.values.items() if capped else ()):
                    for what in labelled[kind][1]:
                        extra[(kind, what)].add_metric([tenant_id, value], getattr(traffic, what))
        yield from extra.values()

    @staticmethod
    def _api_latency(stats: Stats) -> Metric:
        by_api = HistogramMetricFamily("tenantry_api_latency_seconds", "Request latency by API, all tenants "
                                       "together (stages as in tenantry_request_latency_seconds).",
                                       labels=["api", "stage"])
        for stage, table in (("proxy", stats.api_proxy_latency), ("upstream", stats.api_upstream_latency)):
            for key, h in table.items():
                _histogram(by_api, [api_name(key), stage], h)
        return by_api

    def _connections(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("tenantry_connections_active", "Open client connections (tenant=\"\": not "
                                  "logged in yet, or tenants off).", labels=["tenant"])
        for tenant_id, n in self.view.active.items():
            gauge.add_metric([tenant_id], n)
        yield gauge

    def _quotas(self) -> Iterator[Metric]:
        view = self.view
        limit = GaugeMetricFamily("tenantry_quota_limit", "The quota enforced now (after auto-tuning), in "
                                  "bytes, requests or connections per second.", labels=["tenant", "quota"])
        used = CounterMetricFamily("tenantry_quota_used", "Bytes, requests and connections counted against "
                                   "the tenant's quotas, limited or not.", labels=["tenant", "quota"])
        utilisation = GaugeMetricFamily("tenantry_quota_utilisation_ratio", "Use over the last 10 s divided by "
                                        "the enforced quota (1: at the quota).", labels=["tenant", "quota"])
        for (tenant_id, resource), amount in view.quota_used.items():
            used.add_metric([tenant_id, resource], amount)
        for (tenant_id, resource), rate in view.quota_limits.items():
            limit.add_metric([tenant_id, resource], rate)
        for (tenant_id, resource), ratio in view.utilisation.items():
            utilisation.add_metric([tenant_id, resource], ratio)
        yield from (limit, used, utilisation)

    def _upstream(self, stats: Stats) -> Iterator[Metric]:
        connections, in_flight = self.view.upstream_connections, self.view.in_flight
        g, c = GaugeMetricFamily, CounterMetricFamily
        conns = g("tenantry_upstream_connections", "Open connections to the broker.", labels=["broker"])
        flight = g("tenantry_upstream_requests_in_flight", "Requests sent to the broker and not yet answered.",
                   labels=["broker"])
        connects = c("tenantry_upstream_connects", "Connections opened and logged in to the broker.",
                     labels=["broker"])
        errors = c("tenantry_upstream_errors", "Broker connection failures: connect (could not connect or log "
                   "in), lost (closed by the broker), failed (malformed answer or failed re-login).",
                   labels=["broker", "kind"])
        up = g("tenantry_upstream_up", "1 if the broker answered the last health check (broker=bootstrap: any "
               "bootstrap server did).", labels=["broker"])
        for broker, b in stats.brokers.items():
            conns.add_metric([broker], connections.get(broker, 0))
            flight.add_metric([broker], in_flight.get(broker, 0))
            connects.add_metric([broker], b.connects)
            for kind in UPSTREAM_ERRORS:
                errors.add_metric([broker, kind], b.errors.get(kind, 0))
            if b.up is not None:
                up.add_metric([broker], 1 if b.up else 0)
        yield from (conns, flight, connects, errors, up)

    def _process(self, stats: Stats) -> Iterator[Metric]:
        lag = HistogramMetricFamily("tenantry_event_loop_lag_seconds", "How late the event loop ran a 1 s "
                                    "timer: every request waits this long too.")
        _histogram(lag, [], stats.loop_lag)
        yield lag
        yield GaugeMetricFamily("tenantry_event_loop_lag_last_seconds", "The last event-loop lag measured.",
                                value=stats.loop_lag_last)
        yield CounterMetricFamily("tenantry_connections_accepted", "Client connections accepted (before login).",
                                  value=stats.accepted)
        reloads = CounterMetricFamily("tenantry_config_reloads", "Config reloads, by result (ok, refused).",
                                      labels=["result"])
        for result in RELOADS:
            reloads.add_metric([result], stats.reloads.get(result, 0))
        yield reloads
        yield GaugeMetricFamily("tenantry_tenants", "Tenants in the config.", value=self.view.tenants)
        ready = 1 if self.view.ready else 0
        yield GaugeMetricFamily("tenantry_ready", "1 if /readyz says ready.", value=ready)
        info = GaugeMetricFamily("tenantry_build_info", "The proxy's version, and whether its scanner runs in C "
                                 "(scanner=C) or in Python (the extension was not built).",
                                 labels=["version", "scanner"])
        info.add_metric([VERSION, SCANNER], 1)
        yield info


def build_registry(view: MetricsView) -> CollectorRegistry:
    """A registry of the view plus the process's own metrics (CPU, memory, file descriptors, GC)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(view))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render(view: MetricsView) -> bytes:
    """The Prometheus text for a view; safe to call from a worker thread."""
    return generate_latest(build_registry(view))


def _encryption(stats: Stats) -> Iterator[Metric]:
    """Record encryption's counters, for the tenants that have sealed or opened a record."""
    sealed = CounterMetricFamily("tenantry_encrypted_records", "Records of encrypted topics sealed on produce "
                                 "(direction=seal) and opened on fetch (direction=open).",
                                 labels=["tenant", "direction"])
    failed = CounterMetricFamily("tenantry_encryption_failures", "Produce requests whose records could not be "
                                 "sealed (direction=seal: refused) and fetched partitions whose records could not be "
                                 "opened (direction=open: answered CORRUPT_MESSAGE).", labels=["tenant", "direction"])
    for tenant_id, t in stats.tenants.items():
        if t.records_sealed or t.records_opened or t.encryption_failures:
            sealed.add_metric([tenant_id, "seal"], t.records_sealed)
            sealed.add_metric([tenant_id, "open"], t.records_opened)
            for direction in ("seal", "open"):
                failed.add_metric([tenant_id, direction], t.encryption_failures.get(direction, 0))
    yield from (sealed, failed)
