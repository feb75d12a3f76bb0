"""KIP-368: the proxy logs in to the broker again before its session expires, invisibly to clients."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from .conftest import REAUTH_MS, unique

pytestmark = pytest.mark.integration


def produce_across_broker_sessions(settings: dict[str, object], topic: str) -> int:
    """Produce on one connection for 2.5 broker session lifetimes; every message delivered, their count."""
    producer = Producer({**settings, "allow.auto.create.topics": True, "connections.max.idle.ms": 0})
    errors, delivered = [], []
    deadline = time.monotonic() + 2.5 * REAUTH_MS / 1000  # spans at least two broker session lifetimes
    while time.monotonic() < deadline:
        producer.produce(topic, value=b"tick",
                         on_delivery=lambda err, msg: errors.append(err) if err else delivered.append(msg))
        producer.poll(0.25)
    assert producer.flush(30) == 0
    assert errors == []
    return len(delivered)


def test_a_long_lived_connection_survives_broker_session_expiry(proxy):
    assert produce_across_broker_sessions({"bootstrap.servers": proxy.bootstrap}, unique("reauth")) > 10
    assert "re-authenticated to the broker" in proxy.log_text()
