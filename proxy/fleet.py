"""Quotas held across a fleet of proxies (quota_coordination = kafka), through the cluster it fronts.

Every quota_tune_interval_ms each replica (a process: a `--workers` worker is one too) publishes what
each tenant used of each configured limit there and whether a limit held it back, as one record on
the one-partition quota_coordination_topic, keyed by its replica id (host:pid). Every replica reads
every report, its own included, and from the live ones computes the same split of every limit
(:mod:`tenantry.tenants.fleet_shares`): its slice becomes what its token buckets enforce. The proxy-wide
capacities are split the same way, under the pseudo-tenant "*", and the fair-share tuner works within
this replica's slice. Joining takes nothing but starting; a replica that stops reporting is dropped
after three intervals. When no report has come through for that long (the topic cannot be reached,
this replica's own reports included), each replica falls back to limit / the last fleet size it knew,
logs it once, and sets tenantry_fleet_coordinated to 0 (alert TenantryQuotaCoordinationDown).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.quota_book import QuotaBook
from tenantry.proxy.service_client import ensure_topic, service_client_settings
from tenantry.tenants.fleet_shares import FleetShares, Report, ReportError, Usage, decode_report, encode_report
from tenantry.tenants.quotas import MAX_CONNECTIONS, Meters
from tenantry.tenants.registry import Registry

log = logging.getLogger("tenantry.fleet")
CAPACITY = "*"  # the pseudo-tenant of the proxy-wide capacities in reports; no tenant id can be "*"
LAG_ROUNDS = 2  # every replica splits by the reports of two rounds ago, which all of them have by then
CATCH_UP = 1000  # reports read back at start: the last few intervals of a fleet of hundreds


def replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def topic_problems(config: ProxyConfig, registry: Registry) -> list[str]:
    """A tenant whose namespace covers the coordination topic could read and forge the fleet's reports."""
    if config.quota_coordination != "kafka":
        return []
    return [f"tenant {t.id}: its prefix {t.prefix!r} covers quota_coordination_topic "
            f"{config.quota_coordination_topic!r}, which it could then read and write"
            for t in registry.tenants.values() if config.quota_coordination_topic.startswith(t.prefix)]


@dataclass
class Traffic:
    """What coordination has done, for the metrics: reports and their bytes, each way."""

    published: int = 0
    published_bytes: int = 0
    received: int = 0
    received_bytes: int = 0
    invalid: int = 0
    failures: int = 0


@dataclass
class FleetView:
    """The sans-I/O half: reports out of this replica's meters, slices into them."""

    quotas: QuotaBook
    shares: FleetShares
    clock: Callable[[], float] = time.monotonic
    _last: float = field(default=0.0)
    _counters: dict[str, dict[str, float]] = field(default_factory=dict)
    _held: dict[str, dict[str, int]] = field(default_factory=dict)
    _counts: dict[tuple[str, str], list[tuple[int, int]]] = field(default_factory=dict)  # (round, whole slice)

    def report(self) -> Report:
        """What each tenant used of each limit here since the last report, and whether one held it back."""
        now = self.clock()
        elapsed = max(now - self._last, 1e-3)
        self._last = now
        usage: dict[tuple[str, str], Usage] = {}
        totals = dict.fromkeys(self.quotas.capacity, 0.0)
        for tenant_id, meters in self.quotas.meters.items():
            counters, before = meters.counters(), self._counters.get(tenant_id, {})
            held, held_before = meters.held, self._held.get(tenant_id, {})
            for name in meters.limits():
                value = counters.get(name, 0.0)
                used = value if name.startswith(MAX_CONNECTIONS) else (value - before.get(name, value)) / elapsed
                usage[(tenant_id, name)] = Usage(max(used, 0.0), held.get(name, 0) > held_before.get(name, 0),
                                                 _active(meters, name))
            for resource in totals:
                totals[resource] += (counters[resource] - before.get(resource, counters[resource])) / elapsed
            self._counters[tenant_id], self._held[tenant_id] = counters, dict(held)
        for tenant_id in set(self._counters) - set(self.quotas.meters):
            del self._counters[tenant_id], self._held[tenant_id]
        for resource, used in totals.items():
            usage[(CAPACITY, resource)] = Usage(max(used, 0.0), resource in self.quotas.capacity_held,
                                                len(self.quotas.meters))
        self.quotas.capacity_held.clear()
        return Report(self.shares.me, usage)

    def __post_init__(self) -> None:
        self._last = self.clock()
        self.quotas.slicer = self.slice  # a tenant's first connection here starts from its slice, not the whole

    def apply(self) -> None:
        """Every tenant's slices, and the capacities', from the live reports (or the fallback without any)."""
        reports = self.shares.view()
        for tenant_id, meters in self.quotas.meters.items():
            self.slice(tenant_id, meters, reports)
        self.quotas.reslice_capacity({r: self.shares.share(CAPACITY, r, c, reports)
                                      for r, c in self.quotas.capacity.items()})

    def slice(self, tenant_id: str, meters: Meters, reports: dict[str, Report] | None = None) -> None:
        reports = self.shares.view() if reports is None else reports
        shares = self.shares
        meters.reslice({name: self._count(tenant_id, name, shares.share_whole(tenant_id, name, int(limit), reports))
                        if name.startswith(MAX_CONNECTIONS) else shares.share(tenant_id, name, limit, reports)
                        for name, limit in meters.limits().items()})

    def _count(self, tenant_id: str, name: str, split: int) -> int:
        """The connections this replica may hold: the least of its splits over the last LAG_ROUNDS + 1 rounds.

        A rate's slice can move freely: what was let through is gone. Connections stay open, and a replica's
        report of those it just opened reaches the others' settled view only LAG_ROUNDS rounds later; a
        replica whose share grows waits that long before using it, so the others have seen the connections
        of anyone whose share shrank by then (every replica is within a round of the others).
        """
        now = self.shares.current_round()
        history = [(r, v) for r, v in self._counts.get((tenant_id, name), []) if r >= now - self.shares.lag_rounds]
        history.append((now, split))
        self._counts[(tenant_id, name)] = history
        return min(v for _, v in history)


def _active(meters: Meters, name: str) -> int:
    user = name.partition("/")[2]
    return meters.user_connections.get(user, 0) if user else meters.connections


class FleetCoordinator:
    """The I/O half: publishes this replica's report every interval and reads everyone's."""

    def __init__(self, config: ProxyConfig, quotas: QuotaBook, replica: str | None = None) -> None:
        self.config = config
        self.interval = config.quota_tune_interval_ms / 1000
        self.shares = FleetShares(replica or replica_id(), self.interval, lag_rounds=LAG_ROUNDS)
        self.view = FleetView(quotas, self.shares)
        self.traffic = Traffic()
        self.settings = service_client_settings(config, "tenantry-fleet")
        self.topic = config.quota_coordination_topic
        self._producer: AIOKafkaProducer | None = None
        self._said_coordinated: bool | None = None
        self.last_error = ""

    @property
    def replica(self) -> str:
        return self.shares.me

    async def run(self) -> None:
        started = time.monotonic()
        reader: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self._publish(self.view.report())
                if reader is None and self._producer is not None:  # the topic exists: read it from now on
                    reader = asyncio.get_running_loop().create_task(self._read_forever())
                self.view.apply()
                if self.shares.coordinated or time.monotonic() - started > self.interval * 5:
                    self._say_whether_coordinated()
        finally:
            if reader is not None:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            if self._producer is not None:
                await self._producer.stop()

    async def _publish(self, report: Report) -> None:
        value = encode_report(report, time.time())
        try:
            if self._producer is None:
                retention = str(self.config.quota_coordination_retention_ms)
                await ensure_topic(self.settings, self.topic, self.config.quota_coordination_replication_factor,
                                   {"cleanup.policy": "delete", "retention.ms": retention, "segment.ms": retention})
                producer = AIOKafkaProducer(acks=1, **self.settings)
                await asyncio.wait_for(producer.start(), self.interval * 5)
                self._producer = producer
            await asyncio.wait_for(self._producer.send_and_wait(self.topic, value, key=self.replica.encode(),
                                                                partition=0), self.interval * 2)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the topic is unreachable: the slices fall back once reports stop arriving
            self._failed("publish", exc)
            producer, self._producer = self._producer, None
            if producer is not None:
                await asyncio.gather(producer.stop(), return_exceptions=True)
            return
        self.traffic.published += 1
        self.traffic.published_bytes += len(value)

    async def _read_forever(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **self.settings)
            try:
                await asyncio.wait_for(consumer.start(), self.interval * 5)
                partition = TopicPartition(self.topic, 0)
                consumer.assign([partition])
                end = (await consumer.end_offsets([partition]))[partition]
                consumer.seek(partition, max(0, end - CATCH_UP))
                while True:
                    for messages in (await consumer.getmany(partition, timeout_ms=int(self.interval * 1000))).values():
                        for message in messages:
                            self._receive(message.value or b"", message.offset < end)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed("read", exc)
            finally:
                await asyncio.gather(consumer.stop(), return_exceptions=True)
            await asyncio.sleep(self.interval)

    def _receive(self, value: bytes, catching_up: bool) -> None:
        try:
            report, sent_at = decode_report(value)
        except ReportError as exc:
            self.traffic.invalid += 1
            log.warning("ignored a record on %s that is not a report: %s", self.topic, exc)
            return
        self.traffic.received += 1
        self.traffic.received_bytes += len(value)
        # Reports read back at start are as old as their sending time says (clocks agree to well under
        # an interval); after that, one arrives within moments of being sent.
        age = max(0.0, time.time() - sent_at) if catching_up else 0.0
        self.shares.receive(report, age, sent_at)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.traffic.failures += 1
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if reason != self.last_error:
            log.warning("quota coordination: cannot %s %s (%s)", what, self.topic, reason)
        self.last_error = reason

    def _say_whether_coordinated(self) -> None:
        coordinated = self.shares.coordinated
        if coordinated == self._said_coordinated:
            return
        if coordinated:
            log.info("quota coordination: %d replicas report through %s; this one is %s",
                     self.shares.fleet_size, self.topic, self.replica)
        else:
            log.error("quota coordination unavailable (%s): each replica enforces its limits / %d, the last "
                      "fleet size known, until reports come through %s again",
                      self.last_error or "no reports", self.shares.fleet_size, self.topic)
        self._said_coordinated = coordinated

    def status(self) -> dict[str, Any]:
        """The fleet as this replica sees it, for `tenantry status`: each limit's slices and the fleet's use."""
        reports = self.shares.view()
        limits = []
        for tenant_id, meters in sorted(self.view.quotas.meters.items()):
            for name, limit in sorted(meters.limits().items()):
                slices = self.shares.split(tenant_id, name, limit, reports, count=name.startswith(MAX_CONNECTIONS))
                used = sum(r.usage[(tenant_id, name)].used for r in reports.values() if (tenant_id, name) in r.usage)
                limits.append({"tenant": tenant_id, "limit": name, "configured": limit, "used": used,
                               "slices": dict(sorted(slices.items()))})
        return {"replica": self.replica, "coordinated": self.shares.coordinated, "replicas": sorted(reports),
                "fleet_size": self.shares.fleet_size, "last_error": self.last_error, "limits": limits}

    def metrics(self) -> list[Metric]:
        coordinated = GaugeMetricFamily("tenantry_fleet_coordinated", "1 while the replicas' reports come "
                                        "through quota_coordination_topic; 0: each replica enforces its limits "
                                        "divided by the last fleet size it knew.", value=int(self.shares.coordinated))
        replicas = GaugeMetricFamily("tenantry_fleet_replicas", "Replicas (processes) whose reports are live, "
                                     "this one included.", value=self.shares.fleet_size)
        reports = CounterMetricFamily("tenantry_fleet_reports", "Reports published by this replica and received "
                                      "from the fleet (invalid: records that are not reports).", labels=["direction"])
        report_bytes = CounterMetricFamily("tenantry_fleet_report_bytes", "Bytes of the reports published and "
                                           "received: the coordination traffic.", labels=["direction"])
        traffic = self.traffic
        for direction, count, size in (("published", traffic.published, traffic.published_bytes),
                                       ("received", traffic.received, traffic.received_bytes),
                                       ("invalid", traffic.invalid, 0)):
            reports.add_metric([direction], count)
            report_bytes.add_metric([direction], size)
        failures = CounterMetricFamily("tenantry_fleet_failures", "Failures to publish a report or to read the "
                                       "fleet's.", value=traffic.failures)
        limit = GaugeMetricFamily("tenantry_fleet_limit", "A tenant's configured limit, which the fleet shares out "
                                  "(by fleet name: produce, max_connections, produce/USER, ...).",
                                  labels=["tenant", "limit"])
        slice_ = GaugeMetricFamily("tenantry_fleet_slice", "This replica's slice of a tenant's limit: summed over "
                                   "the replicas, the limit.", labels=["tenant", "limit"])
        for tenant_id, meters in self.view.quotas.meters.items():
            for name, value in meters.limits().items():
                limit.add_metric([tenant_id, name], value)
                slice_.add_metric([tenant_id, name], meters.slices.get(name, value))
        return [coordinated, replicas, reports, report_bytes, failures, limit, slice_]
