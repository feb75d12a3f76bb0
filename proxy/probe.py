"""The end-to-end probe (LinkedIn's Kafka Monitor idea): the proxy produces and consumes through its own
listener as a hidden user of each probed tenant, and exports whether messages get through and how long
they take.

The probe user is made up at start, with a random password that exists only in this process's
memory; its name, ``tenantry:probe:<tenant>``, has a ':' that no configured user name may have. It
goes through everything a client does (SASL, namespaces, the broker) on the topic ``tenantry-probe``
in the tenant's namespace, which it creates (one partition) if needed, so the topic is visible to the
tenant and counts against its topic limits. It is replicated to up to three brokers.

It never takes from the tenant it watches: its connections, bytes and requests are not counted against
the tenant's quotas or connection limits (see :mod:`.stages.login`), so a tenant at its limits is not
pushed over them, or throttled, by the probe. The probe measures the path, not the tenant's headroom.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from tenantry.proxy.stats import Histogram
from tenantry.tenants.credentials import ScramCredential
from tenantry.tenants.registry import PROBE_USER_PREFIX, User

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.probe")
TOPIC = "tenantry-probe"
MECHANISM = "SCRAM-SHA-256"
PROBE_FAMILIES = {"tenantry_probe_up", "tenantry_probe_attempts", "tenantry_probe_latency_seconds"}
_STAMP = struct.Struct(">d")


def probe_user_name(tenant_id: str) -> str:
    return f"{PROBE_USER_PREFIX}{tenant_id}"


class TenantProbe:
    """One tenant's probe: a producer and a consumer of partition 0 of its probe topic."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.up: bool | None = None
        self.attempts = {"success": 0, "failure": 0}
        self.latency = Histogram()
        self.last_error = ""


class Probe:
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.password = os.urandom(24).hex()
        self.probes = {t: TenantProbe(t) for t in server.config.probe_tenants}
        credential = ScramCredential.create(MECHANISM, self.password)
        self.users = {t: User(probe_user_name(t), {MECHANISM: credential}) for t in self.probes}

    def _client_settings(self, tenant_id: str) -> dict[str, Any]:
        config = self.server.config
        settings: dict[str, Any] = {
            "bootstrap_servers": f"{config.advertised_host}:{config.listen_port}",
            "security_protocol": config.listener_security_protocol, "sasl_mechanism": MECHANISM,
            "sasl_plain_username": probe_user_name(tenant_id), "sasl_plain_password": self.password,
            "client_id": "tenantry-probe", "request_timeout_ms": 10000,
        }
        if config.listener_security_protocol == "SASL_SSL":
            context = ssl.create_default_context()
            context.check_hostname = False  # the proxy probes itself: its own certificate, on its own host
            context.verify_mode = ssl.CERT_NONE
            settings["ssl_context"] = context
        return settings

    async def run(self) -> None:
        await asyncio.gather(*(self._run_one(p) for p in self.probes.values()))

    async def _run_one(self, probe: TenantProbe) -> None:
        interval = self.server.config.probe_interval_seconds
        while True:
            try:
                await self._session(probe, interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure is a failed probe; the next session starts afresh
                self._failed(probe, exc)
            await asyncio.sleep(interval)

    async def _session(self, probe: TenantProbe, interval: float) -> None:
        settings = self._client_settings(probe.tenant_id)
        await self._ensure_topic(settings, min(3, max(1, len(self.server.brokers))))
        producer = AIOKafkaProducer(acks="all", **settings)
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **settings)
        try:
            await producer.start()
            await consumer.start()
            partition = TopicPartition(TOPIC, 0)
            consumer.assign([partition])
            await consumer.seek_to_end(partition)
            while True:
                await self._round(probe, producer, consumer, interval)
                await asyncio.sleep(interval)
        finally:
            await asyncio.gather(producer.stop(), consumer.stop(), return_exceptions=True)

    @staticmethod
    async def _ensure_topic(settings: dict[str, Any], replication: int) -> None:
        admin = AIOKafkaAdminClient(**{k: v for k, v in settings.items() if k != "client_id"})
        await admin.start()
        try:
            if TOPIC not in await admin.list_topics():
                await admin.create_topics([NewTopic(TOPIC, 1, replication)])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()

    async def _round(self, probe: TenantProbe, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer,
                     timeout: float) -> None:
        nonce = os.urandom(8)
        sent = time.time()
        await asyncio.wait_for(producer.send_and_wait(TOPIC, _STAMP.pack(sent) + nonce, partition=0), timeout)
        deadline = time.monotonic() + max(timeout, 5.0)
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    if message.value is not None and message.value[8:] == nonce:
                        self._succeeded(probe, time.time() - sent)
                        return
        raise TimeoutError(f"the probe message was not consumed within {max(timeout, 5.0):.0f} s")

    @staticmethod
    def _succeeded(probe: TenantProbe, latency: float) -> None:
        if probe.up is False:
            log.info("probe of tenant %s succeeds again", probe.tenant_id)
        probe.up = True
        probe.attempts["success"] += 1
        probe.latency.observe(latency)

    @staticmethod
    def _failed(probe: TenantProbe, exc: BaseException) -> None:
        probe.attempts["failure"] += 1
        probe.last_error = f"{type(exc).__name__}: {exc}"
        if probe.up is not False:
            log.warning("probe of tenant %s failed: %s", probe.tenant_id, probe.last_error)
        probe.up = False

    def metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tenantry_probe_up", "1 if the tenant's last end-to-end probe message was "
                               "produced and consumed through the proxy.", labels=["tenant"])
        attempts = CounterMetricFamily("tenantry_probe_attempts", "End-to-end probes, by result.",
                                       labels=["tenant", "result"])
        latency = HistogramMetricFamily("tenantry_probe_latency_seconds", "From producing a probe message to "
                                        "consuming it, through the proxy.", labels=["tenant"])
        for tenant_id, probe in self.probes.items():
            if probe.up is not None:
                up.add_metric([tenant_id], 1 if probe.up else 0)
            for result, n in probe.attempts.items():
                attempts.add_metric([tenant_id, result], n)
            latency.add_metric([tenant_id], probe.latency.cumulative(), probe.latency.total)
        yield from (up, attempts, latency)

