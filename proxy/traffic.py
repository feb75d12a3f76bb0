"""One client connection's share of the counters: bytes, records, requests, errors and latency.

Produce requests are scanned for their record batches (the records are counted from the batch
headers, never decoded) and responses for their error codes, as Kafka's ErrorsPerSec counts them:
every non-zero error code in a response, by API.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tenantry.protocol import Ref, scan
from tenantry.protocol.layout import carries_entity
from tenantry.protocol.messages import REQUESTS, RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.records import count_records
from tenantry.proxy.exchange import now
from tenantry.proxy.rewrite.rewriter import TENANT_REQUEST
from tenantry.proxy.stats import Stats, TenantStats, Traffic

if TYPE_CHECKING:
    from tenantry.proxy.rewrite.topic_ids import TopicIds
    from tenantry.tenants.naming import Namespace

ERROR_CODES = frozenset({"errorCode"})
RECORDS_BY_TOPIC = frozenset({"records", "topicName", "topicId"})
#: What a Produce request is scanned for, once: its records and topics for the meters, and every field the
#: tenant rewrite changes (the same refs a scan for TENANT_REQUEST alone would find).
PRODUCE_SCAN = RECORDS_BY_TOPIC | TENANT_REQUEST
POLICY_VIOLATION = 44

class Timed(Protocol):
    """When a request arrived, went upstream and came back (0.0: it did not)."""

    arrived: float
    sent: float
    received: float


def tenant_topic_names(namespace: Namespace, topic_ids: TopicIds) -> Callable[[uuid.UUID], str | None]:
    """The tenant's name of a topic id (None if unknown), for per-topic metrics of Produce v13+."""
    def topic_name_of(topic_id: uuid.UUID) -> str | None:
        name = topic_ids.name_of(topic_id)
        return namespace.from_cluster(name) if name else None
    return topic_name_of


class TrafficMeter:
    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.tenant_id = ""
        self.tenant: TenantStats = stats.tenant("")
        self.client: Traffic | None = None
        self._topic_name_of: Callable[[uuid.UUID], str | None] | None = None
        self._client_id_seen = False

    def logged_in(self, tenant_id: str, topic_name_of: Callable[[uuid.UUID], str | None]) -> None:
        self.tenant_id = tenant_id
        self.tenant = self.stats.tenant(tenant_id)
        self._topic_name_of = topic_name_of
        self.tenant.connections_opened += 1
        self.client, self._client_id_seen = None, False

    def client_id(self, client_id: str | None, size: int) -> None:
        """The first client id the connection sends after login (clients keep one per connection),
        with the size of the request that carried it (already counted for the tenant)."""
        if self._client_id_seen:
            return
        self._client_id_seen = True
        if self.tenant.client_ids is not None:
            self.client = self.tenant.client_ids.get(client_id or "")
            self.client.bytes_in += size
            self.client.requests += 1

    def request(self, api_key: int, size: int) -> None:
        tenant = self.tenant
        tenant.bytes_in += size
        tenant.requests[api_key] += 1
        if self.client is not None:
            self.client.bytes_in += size
            self.client.requests += 1

    def produced(self, version: int, frame: memoryview, body_offset: int) -> list[Ref]:
        """Count the records of a Produce request (per topic too, when topic labels are on).

        Returns the request's refs of :data:`PRODUCE_SCAN`: the rewriting stage uses them rather than
        walking the request a second time.
        """
        topics = self.tenant.topics
        refs = scan(REQUESTS[ApiKey.PRODUCE], version, frame, body_offset, PRODUCE_SCAN)
        total, topic = 0, ""
        for ref in refs:
            if ref.entity == "records":
                count = count_records(ref.value)
                total += count
                if topics is not None:
                    traffic = topics.get(topic)
                    traffic.records_in += count
                    traffic.bytes_in += len(ref.value) if ref.value is not None else 0
            elif ref.entity == "topicName":
                topic = ref.value or ""
            elif ref.entity == "topicId" and ref.value is not None and self._topic_name_of is not None:  # v13+
                topic = self._topic_name_of(ref.value) or ""
        self.tenant.records_in += total
        if self.client is not None:
            self.client.records_in += total
        return refs

    def errors(self, api_key: int, version: int, frame: memoryview | bytes, body_offset: int) -> None:
        """Count every non-zero error code in a response."""
        cls = RESPONSES[api_key]
        if not carries_entity(cls, version, ERROR_CODES):
            return
        errors = self.tenant.errors
        for ref in scan(cls, version, memoryview(frame), body_offset, ERROR_CODES):
            if ref.value:
                errors[(api_key, ref.value)] += 1

    def refused(self, api_key: int, count: int) -> None:
        """Items a guard rail refused: POLICY_VIOLATION each, merged into the broker's response."""
        if count:
            self.tenant.errors[(api_key, POLICY_VIOLATION)] += count

    def answered(self, api_key: int, timed: Timed, size: int) -> None:
        """A response is ready to go out (any throttle delay is counted apart, as throttle time)."""
        done = now()
        tenant = self.tenant
        tenant.bytes_out += size
        if self.client is not None:
            self.client.bytes_out += size
        stats = self.stats
        if timed.received:
            upstream = timed.received - timed.sent
            proxy = (timed.sent - timed.arrived) + (done - timed.received)
            tenant.upstream_latency.observe(upstream)
            stats.api_upstream_latency[api_key].observe(upstream)
        else:
            proxy = done - timed.arrived
        tenant.proxy_latency.observe(proxy)
        stats.api_proxy_latency[api_key].observe(proxy)

    def closed(self, counted: bool) -> None:
        if counted:
            self.tenant.connections_closed += 1
