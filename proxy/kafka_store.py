"""The tenant store in Kafka (tenant_store = "kafka"): reading it whole, following it, and writing changes.

Replicas read the compacted tenant topic from its start at start-up (refusing to start if the tenants
there do not validate, as with a bad file), then follow it: every change is applied live, as a reload of
the file would be, within moments on every replica. The CLI writes one record per changed tenant, with
who made the change, when and how in its headers.
"""

from __future__ import annotations

import asyncio
import copy
import getpass
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.service_client import ensure_topic, service_client_settings
from tenantry.tenants.registry import Registry, RegistryError
from tenantry.tenants.store import StoreError
from tenantry.tenants.tenant_records import (
    Change,
    RecordError,
    TenantTable,
    change_headers,
    changes,
    describe_headers,
    encode_entry,
)

if TYPE_CHECKING:
    from tenantry.proxy.server import ProxyServer

log = logging.getLogger("tenantry.tenant_store")
class TenantStoreError(RuntimeError):
    """The stored tenants cannot be served: the proxy refuses to start."""


COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}


async def _ensure(config: ProxyConfig, settings: dict[str, Any]) -> None:
    await ensure_topic(settings, config.tenant_store_topic, config.tenant_store_replication_factor, COMPACTED)


async def read_table(config: ProxyConfig, settings: dict[str, Any]) -> tuple[TenantTable, int]:
    """Every tenant the topic holds now, and the offset to follow it from."""
    await _ensure(config, settings)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **settings)
    await consumer.start()
    try:
        partition = TopicPartition(config.tenant_store_topic, 0)
        consumer.assign([partition])
        end = (await consumer.end_offsets([partition]))[partition]
        await consumer.seek_to_beginning(partition)
        table = TenantTable()
        while await consumer.position(partition) < end:
            for message in (await consumer.getmany(partition, timeout_ms=1000)).get(partition, []):
                if message.offset < end:
                    _apply(table, message.key, message.value, message.offset)
        return table, end
    finally:
        await consumer.stop()


def _apply(table: TenantTable, key: bytes | None, value: bytes | None, offset: int) -> str | None:
    try:
        return table.apply((key or b"").decode(errors="replace"), value)
    except RecordError as exc:
        log.error("tenant store: skipped record at offset %d, not a tenant record: %s", offset, exc)
        return None


async def write_changes(config: ProxyConfig, settings: dict[str, Any], todo: list[Change], what: str) -> None:
    headers = change_headers(f"{getpass.getuser()}@{socket.gethostname()}",
                             datetime.now(UTC).isoformat(timespec="seconds"), what)
    producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **settings)
    await producer.start()
    try:
        for change in todo:
            value = encode_entry(change.entry) if change.entry is not None else None
            await producer.send_and_wait(config.tenant_store_topic, value, key=change.key.encode(), partition=0,
                                         headers=headers)
    finally:
        await producer.stop()


@contextmanager
def edit_kafka_store(config: ProxyConfig, what: str) -> Iterator[dict[str, Any]]:
    """For the CLI: yield the stored tenants in the config file's shape; on exit validate and write what changed."""
    before = read_kafka_store(config)
    data = copy.deepcopy(before)
    yield data
    try:
        Registry.from_config(data)
    except RegistryError as exc:
        raise StoreError(f"not saved: {exc}") from None
    todo = changes(before, data)
    if todo:
        try:
            asyncio.run(write_changes(config, service_client_settings(config, "tenantry-cli"), todo, what))
        except Exception as exc:
            raise StoreError(f"cannot write to {config.tenant_store_topic}: {exc}") from None


def read_kafka_store(config: ProxyConfig) -> dict[str, Any]:
    """For the CLI: the stored tenants, in the config file's shape."""
    try:
        table, _ = asyncio.run(read_table(config, service_client_settings(config, "tenantry-cli")))
    except Exception as exc:
        raise StoreError(f"cannot read {config.tenant_store_topic} from {','.join(config.upstream)}: {exc}") from None
    return table.config()


class KafkaTenants:
    """The proxy's side: load the tenants at start, then apply every change as it arrives."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.config = server.config
        self.settings = service_client_settings(server.config, "tenantry-tenant-store")
        self.table = TenantTable()
        self._offset = 0

    async def load(self) -> Registry:
        """The stored tenants; TenantStoreError if they cannot be read or do not validate (no start, then)."""
        try:
            self.table, self._offset = await read_table(self.config, self.settings)
            registry = Registry.from_config(self.table.config())
        except RegistryError as exc:
            raise TenantStoreError(f"the tenants in {self.config.tenant_store_topic}: {exc}") from None
        except Exception as exc:
            raise TenantStoreError(f"cannot read {self.config.tenant_store_topic}: {exc}") from None
        log.info("tenant store: %d tenants from %s", len(registry.tenants), self.config.tenant_store_topic)
        return registry

    async def follow(self) -> None:
        while True:
            consumer = AIOKafkaConsumer(enable_auto_commit=False, **self.settings)
            try:
                await consumer.start()
                partition = TopicPartition(self.config.tenant_store_topic, 0)
                consumer.assign([partition])
                consumer.seek(partition, self._offset)
                while True:
                    batch = (await consumer.getmany(partition, timeout_ms=1000)).get(partition, [])
                    said = []
                    for message in batch:
                        changed = _apply(self.table, message.key, message.value, message.offset)
                        said.append(f"tenant {changed or '(defaults)'} {describe_headers(message.headers)}")
                        self._offset = message.offset + 1
                    if batch:
                        self._apply_registry(said)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the last good tenants stay in force; follow again from where it was
                log.error("tenant store: cannot read %s (%s); retrying", self.config.tenant_store_topic, exc)
            finally:
                await asyncio.gather(consumer.stop(), return_exceptions=True)
            await asyncio.sleep(2)

    def _apply_registry(self, said: list[str]) -> None:
        from tenantry.proxy.reload import apply_registry, refuse
        from tenantry.proxy.tenant_checks import setup_problems

        try:
            new = Registry.from_config(self.table.config())
            problems = setup_problems(self.config, new)
        except RegistryError as exc:
            problems = [str(exc)]
        if problems:
            refuse(self.server, problems, f"the change in {self.config.tenant_store_topic} ({'; '.join(said)})")
            return
        for line in said:
            log.info("tenant store: applying %s", line)
        apply_registry(self.server, new, self.config.tenant_store_topic)
