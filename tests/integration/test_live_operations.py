"""Live operations with clients connected: a reload, a connection-age limit and a drain lose no
acknowledged message (real broker, librdkafka producers with acks=all)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from tenantry.localkafka.broker import free_port

from .conftest import RunningProxy, client_config, start_proxy, stop_checked, unique, write_tenants
from .helpers import wait_for
from .test_operations import scrape, value
from .test_tenant_isolation import create

pytestmark = pytest.mark.integration
TENANTRY = [sys.executable, "-m", "tenantry.proxy.cli"]


class SteadyProducer:
    """Produces numbered messages until stopped, and remembers which ones the broker acknowledged."""

    def __init__(self, config: dict[str, object], topic: str) -> None:
        self.producer = Producer({**config, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                                  "message.timeout.ms": 20000})
        self.topic = topic
        self.acked: set[bytes] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, err: object, message: object) -> None:
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked.add(message.value())  # type: ignore[attr-defined]

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self.producer.produce(self.topic, str(n).encode(), on_delivery=self._delivered)
            n += 1
            self.producer.poll(0.002)

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        wait_for(lambda: len(self.acked) >= 50, 30, "the producer to get going")
        return self

    def stop(self, flush: float = 30) -> None:
        self._stop.set()
        self._thread.join(10)
        self.producer.flush(flush)
        # Its delivery callbacks point back here: the cycle would keep librdkafka alive, reconnecting to a
        # stopped proxy (and logging so) for the rest of the session. Dropping it lets it go now.
        del self.producer

    def __exit__(self, *exc: object) -> None:
        if not self._stop.is_set():
            self.stop()


def consumed(config: dict[str, object], topic: str, at_least: int, timeout: float = 60) -> set[bytes]:
    """What a consumer reads from the topic's start: stops at `at_least` messages or after `timeout`."""
    consumer = Consumer({**config, "group.id": unique("check"), "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: set[bytes] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(got) < at_least and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if not message.error():
                    got.add(message.value())
    finally:
        consumer.close()
    return got


def serve(kafka, workdir: Path, *extra: str) -> tuple[RunningProxy, str, Path]:
    config = workdir / "tenantry.toml"
    write_tenants(config)
    port = free_port()
    running = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                          "--metrics-listen", f"127.0.0.1:{port}", "--config-poll-seconds", "0.5", *extra)
    return running, f"http://127.0.0.1:{port}", config


def test_reloads_keep_connections_and_lose_no_acknowledged_message(kafka, tmp_path):
    proxy, url, config = serve(kafka, tmp_path)
    try:
        alice = client_config(proxy, "alice")
        topic = unique("reload")
        create(alice, topic)
        with SteadyProducer(alice, topic) as producer:
            opened = value(scrape(url), "tenantry_connections_opened_total", tenant="acme")
            subprocess.run([*TENANTRY, "tenant", "add", "initech", "--config", str(config)], check=True,
                           capture_output=True)  # a file change: reloaded by the watcher
            wait_for(lambda: value(scrape(url), "tenantry_config_reloads_total", result="ok") >= 1, 20, "a reload")
            proxy.process.send_signal(signal.SIGHUP)
            wait_for(lambda: value(scrape(url), "tenantry_config_reloads_total", result="ok") >= 2, 20, "SIGHUP")
            before = len(producer.acked)
            wait_for(lambda: len(producer.acked) > before + 100, 30, "acks after the reloads")
            producer.stop()
        samples = scrape(url)
        assert value(samples, "tenantry_connections_opened_total", tenant="acme") == opened  # nobody reconnected
        assert value(samples, "tenantry_tenants") == 3
        assert producer.errors == []
        missing = producer.acked - consumed(alice, topic, len(producer.acked))
        assert not missing, f"{len(missing)} of {len(producer.acked)} acknowledged messages are missing"
        print(f"reload: {len(producer.acked)} acknowledged, all consumed back, 0 reconnects")
    finally:
        stop_checked(proxy)


def test_connections_past_their_age_are_replaced_without_losing_acknowledged_messages(kafka, tmp_path):
    proxy, url, _ = serve(kafka, tmp_path, "--max-connection-age-seconds", "2", "--max-connection-age-jitter", "0.5")
    try:
        bob = client_config(proxy, "bob")
        topic = unique("aged")
        create(bob, topic)
        with SteadyProducer(bob, topic) as producer:
            wait_for(lambda: value(scrape(url), "tenantry_connections_aged_out_total", tenant="globex") >= 4, 30,
                     "connections to age out")
            before = len(producer.acked)
            wait_for(lambda: len(producer.acked) > before + 100, 30, "acks on the new connections")
            producer.stop()
        assert producer.errors == []
        assert value(scrape(url), "tenantry_connections_opened_total", tenant="globex") >= 4
        missing = producer.acked - consumed(bob, topic, len(producer.acked))
        assert not missing, f"{len(missing)} of {len(producer.acked)} acknowledged messages are missing"
        aged = value(scrape(url), "tenantry_connections_aged_out_total", tenant="globex")
        print(f"connection age: {len(producer.acked)} acknowledged, all consumed back, {aged:.0f} aged out")
    finally:
        stop_checked(proxy)


def test_a_drain_on_sigterm_loses_no_acknowledged_message(kafka, tmp_path, tenant_proxy):
    proxy, _, _ = serve(kafka, tmp_path, "--shutdown-timeout-seconds", "10")
    alice = client_config(proxy, "alice")
    topic = unique("drain")
    create(alice, topic)
    try:
        with SteadyProducer({**alice, "message.timeout.ms": 5000}, topic) as producer:
            started = time.monotonic()
            proxy.process.send_signal(signal.SIGTERM)
            assert proxy.process.wait(15) == 0
            drain_took = time.monotonic() - started
            producer.stop(flush=10)  # what was not acknowledged before the proxy left fails here
    finally:
        stop_checked(proxy)
    log = proxy.log_text()
    assert "draining connections" in log and "proxy stopped" in log
    assert drain_took < 10
    assert producer.acked, "nothing was acknowledged before the drain"
    # Read back through another proxy: every acknowledged message is in the topic.
    missing = producer.acked - consumed(client_config(tenant_proxy, "alice"), topic, len(producer.acked))
    assert not missing, f"{len(missing)} of {len(producer.acked)} acknowledged messages are missing"
    print(f"drain: {len(producer.acked)} acknowledged before SIGTERM, all consumed back; exit 0 after "
          f"{drain_took:.2f} s; {len(producer.errors)} unacknowledged sends failed on the client")
