"""A three-broker cluster in flux behind the proxy, as managed clusters are (Aiven's talk in shared/reference):
rolling restarts, leaders moved by an operator, a broker back at a new address and one added later.

The cluster runs replication factor 3 with min.insync.replicas 2 and an authorizer; the proxy serves tenants
over SASL_SSL to it. librdkafka (classic and KIP-848 groups) and Kafka's own Java clients (VerifiableProducer
and VerifiableConsumer) run through all of it without a restart, and every message a producer saw
acknowledged is consumed. The clients only ever connect to the proxy.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, ElectionType, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tenantry.localkafka import kafka_classpath
from tenantry.localkafka.broker import AUTHORIZER, free_port
from tenantry.localkafka.cluster import KafkaCluster

from .conftest import (
    GROUP_PROTOCOLS,
    KAFKA_VERSION,
    KIP848,
    TENANT_USERS,
    RunningProxy,
    client_config,
    start_proxy,
    stop_checked,
    unique,
    write_tenants,
)
from .helpers import readiness, wait_for
from .test_upstream_tls import sasl_ssl_flags

pytestmark = pytest.mark.integration
USER = "alice"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    running = KafkaCluster(tmp_path_factory.mktemp("cluster"), brokers=3, tls=True, version=KAFKA_VERSION,
                           extra_properties=AUTHORIZER)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def cluster_proxy(cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    workdir = tmp_path_factory.mktemp("cluster-proxy")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    proxy = start_proxy(None, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--health-check-interval-seconds", "1", "--metrics-listen", f"127.0.0.1:{free_port()}",
                        upstream=cluster.bootstrap("sasl_ssl"), upstream_flags=sasl_ssl_flags(cluster))
    try:
        yield proxy
    finally:
        stop_checked(proxy)


# -- the cluster, seen directly (as its operator sees it) ----------------------------------------------------
def direct_admin(cluster: KafkaCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": cluster.bootstrap("plaintext")})


def cluster_topic(cluster: KafkaCluster, tenant_topic: str) -> str:
    """The topic's name on the cluster (with the tenant's hidden prefix)."""
    names = [t for t in direct_admin(cluster).list_topics(timeout=10).topics if t.endswith(tenant_topic)]
    assert len(names) == 1, names
    return names[0]


def fully_replicated(cluster: KafkaCluster) -> bool:
    """Every partition of every topic has all its replicas in sync (the point a rolling restart waits for)."""
    try:
        metadata = direct_admin(cluster).list_topics(timeout=5)
    except KafkaException:  # a cluster in the middle of a restart may not answer yet
        return False
    return all(len(p.isrs) == len(p.replicas) and p.leader >= 0
               for t in metadata.topics.values() for p in t.partitions.values())


def broker_ports(cluster: KafkaCluster) -> set[int]:
    return {int(address.rsplit(":", 1)[1]) for broker in cluster.description()["brokers"].values()
            for address in broker.values()}


def cluster_pids(cluster: KafkaCluster) -> set[int]:
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if "kafka.Kafka" in (p.info["cmdline"] or []) and any(str(cluster.dir) in a for a in p.info["cmdline"])}


class DirectConnections:
    """Samples, while it runs, which other processes hold connections to the brokers' own ports (this one's
    are the test's own direct admin client's; its librdkafka clients are checked by what they know)."""

    def __init__(self, cluster: KafkaCluster, allowed: set[int]) -> None:
        self.cluster, self.allowed, self.seen = cluster, allowed, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            ports, members = broker_ports(self.cluster), cluster_pids(self.cluster)
            for conn in psutil.net_connections(kind="tcp"):
                if (conn.raddr and conn.raddr.port in ports and conn.status == psutil.CONN_ESTABLISHED
                        and conn.pid is not None  # a socket between owners (a process just gone): no one to name
                        and conn.pid not in members | self.allowed | {os.getpid()}):
                    self.seen.add(conn.pid)

    def __enter__(self) -> DirectConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- clients ---------------------------------------------------------------------------------------------
class RdProducer(threading.Thread):
    """An idempotent acks=all librdkafka producer writing "0", "1", ... until stopped."""

    def __init__(self, settings: dict[str, object], topic: str) -> None:
        super().__init__(daemon=True)
        self.producer = Producer({**settings, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
        self.topic, self.acked, self.errors = topic, set[str](), list[str]()
        self.stopping = threading.Event()
        self.brokers: set[int] = set()  # the broker ports it knows at the end

    def run(self) -> None:
        def delivered(err: object, msg: object) -> None:
            if err is not None:
                self.errors.append(str(err))
            else:
                self.acked.add(msg.value().decode())  # type: ignore[attr-defined]
        i = 0
        while not self.stopping.is_set():
            self.producer.produce(self.topic, value=str(i).encode(), on_delivery=delivered)
            self.producer.poll(0.005)
            i += 1
        assert self.producer.flush(60) == 0
        self.brokers = {b.port for b in self.producer.list_topics(timeout=10).brokers.values()}


class RdConsumer(threading.Thread):
    """A librdkafka group member collecting every value it reads."""

    def __init__(self, settings: dict[str, object], topic: str, protocol: str) -> None:
        super().__init__(daemon=True)
        extra = {"group.protocol": protocol} if protocol == "consumer" else {"session.timeout.ms": 10000}
        self.consumer = Consumer({**settings, "group.id": unique(f"g-{protocol}"), "auto.offset.reset": "earliest",
                                  **extra})
        self.consumer.subscribe([topic])
        self.protocol = protocol
        self.values, self.errors = set[str](), list[str]()
        self.stopping = threading.Event()
        self.brokers: set[int] = set()  # the broker ports it knows at the end

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                message = self.consumer.poll(0.2)
                if message is None:
                    continue
                if message.error():
                    if not message.error().retriable() and message.error().fatal():
                        self.errors.append(str(message.error()))
                    continue
                self.values.add(message.value().decode())
            # Asked from this thread: the Python client's consumer must not be used from two threads at once.
            self.brokers = {b.port for b in self.consumer.list_topics(timeout=10).brokers.values()}
        finally:
            self.consumer.close()


def java_properties(path: Path) -> Path:
    _, mechanism, password = TENANT_USERS[USER]
    module = "scram.ScramLoginModule" if mechanism.startswith("SCRAM") else "plain.PlainLoginModule"
    path.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n"
                    f"sasl.jaas.config=org.apache.kafka.common.security.{module} required "
                    f'username="{USER}" password="{password}";\n')
    return path


def java_tool(main: str, out: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(out, "wb") as sink:
        return subprocess.Popen(["java", "-Xmx256m", "-cp", kafka_classpath(KAFKA_VERSION), main, *args],
                                stdout=sink, stderr=subprocess.STDOUT)


def events(path: Path) -> list[dict[str, object]]:
    """The JSON lines a Verifiable* tool printed (its log lines left out)."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def create(settings: dict[str, object], topic: str, partitions: int) -> None:
    admin = AdminClient(settings)  # held until the futures are done: a collected client cancels them
    for future in admin.create_topics([NewTopic(topic, partitions, 3)]).values():
        future.result(30)


def restart_each_broker(cluster: KafkaCluster, new_address_for: int | None = None) -> None:
    for node_id in cluster.broker_ids:
        wait_for(lambda: fully_replicated(cluster), 120, "every partition fully replicated before a restart")
        cluster.stop_broker(node_id)  # SIGTERM: a controlled shutdown, leaders move first
        time.sleep(2)  # the clients notice and move to the new leaders
        cluster.start_broker(node_id, new_address=node_id == new_address_for)
    wait_for(lambda: fully_replicated(cluster), 120, "every partition fully replicated after the restarts")


@contextmanager
def producing(settings: dict[str, object], topic: str, partitions: int) -> Iterator[RdProducer]:
    """A new topic of the tenant's and an idempotent producer under way on it; once the block ends, every
    message it sent has been acknowledged, without an error."""
    create(settings, topic, partitions)
    producer = RdProducer(settings, topic)
    producer.start()
    try:
        wait_for(lambda: len(producer.acked) > 100, 60, "the producer under way")
        yield producer
    finally:
        producer.stopping.set()
        producer.join(90)
    assert producer.errors == []


def more_acknowledgements(producer: RdProducer, count: int, what: str) -> None:
    before = len(producer.acked)
    wait_for(lambda: len(producer.acked) > before + count, 60, what)


# -- the tests -------------------------------------------------------------------------------------------
def test_a_rolling_restart_loses_no_acknowledged_message(cluster, cluster_proxy, tmp_path):
    """Every broker restarted in turn, under librdkafka and Java producers (idempotent, acks=all) and
    consumer groups of both protocols: no acknowledged message is missing from any consumer, no client
    was restarted or saw a fatal error, and none connected to a broker directly."""
    settings = client_config(cluster_proxy, USER)
    rd_topic, java_topic = unique("roll-rd"), unique("roll-java")
    create(settings, rd_topic, 3)
    create(settings, java_topic, 3)
    properties = java_properties(tmp_path / "client.properties")
    producer_properties = tmp_path / "producer.properties"  # VerifiableProducer turns retries off unless told
    producer_properties.write_text(properties.read_text() + "enable.idempotence=true\nretries=2147483647\n")
    producer = RdProducer(settings, rd_topic)
    consumers = [RdConsumer(settings, rd_topic, protocol) for protocol in GROUP_PROTOCOLS]
    java_producer = java_tool("org.apache.kafka.tools.VerifiableProducer", tmp_path / "producer.out",
                              "--bootstrap-server", cluster_proxy.bootstrap, "--topic", java_topic,
                              "--throughput", "100", "--acks", "-1", "--producer.config", str(producer_properties))
    java_consumer = java_tool("org.apache.kafka.tools.VerifiableConsumer", tmp_path / "consumer.out",
                              "--bootstrap-server", cluster_proxy.bootstrap, "--topic", java_topic,
                              "--group-id", unique("g-java"), "--reset-policy", "earliest", "--verbose",
                              "--consumer.config", str(properties),
                              *(("--group-protocol", "consumer") if KIP848 else ()))
    java = [java_producer, java_consumer]
    try:
        with DirectConnections(cluster, {cluster_proxy.process.pid, *cluster_pids(cluster)}) as direct:
            for thread in (producer, *consumers):
                thread.start()
            wait_for(lambda: len(producer.acked) > 200, 60, "the producers under way")
            restart_each_broker(cluster)
            time.sleep(3)
            assert all(p.poll() is None for p in java), "a Java client exited during the restarts"
            producer.stopping.set()
            producer.join(90)
            java_producer.terminate()
            java_producer.wait(30)
            java_acked = {str(e["value"]) for e in events(tmp_path / "producer.out")
                          if e.get("name") == "producer_send_success"}

            def java_consumed() -> set[str]:
                return {str(e["value"]) for e in events(tmp_path / "consumer.out") if e.get("name") == "record_data"}
            try:
                wait_for(lambda: all(producer.acked <= c.values for c in consumers), 120, "librdkafka caught up")
            except AssertionError:  # say which acknowledged values each consumer lacks, to tell a stuck member
                missing = {c.protocol: sorted(producer.acked - c.values, key=int) for c in consumers}  # from loss
                raise AssertionError(f"acknowledged but not consumed, by group protocol: "
                                     f"{ {p: (len(v), v[:20]) for p, v in missing.items()} }") from None
            wait_for(lambda: java_acked <= java_consumed(), 120, "the Java consumer caught up")
    finally:
        producer.stopping.set()
        for consumer in consumers:
            consumer.stopping.set()
            consumer.join(30)
        for process in java:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
    assert producer.errors == [] and all(c.errors == [] for c in consumers)
    assert len(producer.acked) > 500 and len(java_acked) > 200
    known = producer.brokers.union(*(c.brokers for c in consumers))
    assert known and known <= cluster_proxy.ports, f"librdkafka learned of {known - cluster_proxy.ports}"
    assert [e for e in events(tmp_path / "producer.out") if e.get("name") == "producer_send_error"] == []
    assert direct.seen == set(), f"processes connected to the brokers directly: {direct.seen}"


def test_leaders_moved_on_the_cluster_are_followed(cluster, cluster_proxy, tmp_path):
    """An operator reorders a partition's replicas and runs a preferred leader election straight on the
    cluster; a producer through the proxy follows the new leader without an error."""
    topic = unique("moved")
    with producing(client_config(cluster_proxy, USER), topic, 1) as producer:
        name = cluster_topic(cluster, topic)
        admin = direct_admin(cluster)
        partition = admin.list_topics(name, timeout=10).topics[name].partitions[0]
        replicas = partition.replicas
        new_leader = next(r for r in replicas if r != partition.leader)
        plan = tmp_path / "reassign.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": name, "partition": 0, "replicas": [new_leader, *(r for r in replicas if r != new_leader)]}]}))
        subprocess.run(["java", "-Xmx256m", "-cp", kafka_classpath(KAFKA_VERSION),
                        "org.apache.kafka.tools.reassign.ReassignPartitionsCommand", "--bootstrap-server",
                        cluster.bootstrap("plaintext"), "--reassignment-json-file", str(plan), "--execute"],
                       check=True, capture_output=True, timeout=120)
        def elected() -> bool:
            admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(name, 0)]).result(30)
            return admin.list_topics(name, timeout=10).topics[name].partitions[0].leader == new_leader
        wait_for(elected, 60, f"broker {new_leader} leading")
        more_acknowledgements(producer, 200, "acknowledgements from the new leader")


def test_a_broker_back_at_a_new_address_is_followed(cluster, cluster_proxy):
    """A broker replaced by a machine at another address (same id and data): the proxy learns the address from
    the cluster's metadata and serves it on the same port as before, so clients notice nothing."""
    with producing(client_config(cluster_proxy, USER), unique("moved-broker"), 3) as producer:
        before = cluster.description()["brokers"]["2"]["sasl_ssl"]
        restart_each_broker(cluster, new_address_for=2)
        after = cluster.description()["brokers"]["2"]["sasl_ssl"]
        assert after != before
        metrics = readiness_address(cluster_proxy)
        wait_for(lambda: readiness(metrics)[1]["brokers"]["2"] == {  # type: ignore[index]
            "upstream": after, "port": cluster_proxy.broker_port_base + 2, "up": True}, 60,
            "the proxy serving broker 2 at its new address")
        more_acknowledgements(producer, 300, "acknowledgements after the move")
    assert readiness(readiness_address(cluster_proxy))[0] == 200


def test_a_broker_added_later_has_its_listener_before_clients_hear_of_it(cluster, cluster_proxy):
    """A fourth broker joins; the first metadata that names it reaches a client only once the proxy listens
    for it, and a topic placed on it is served through that port."""
    settings = client_config(cluster_proxy, USER)
    node_id = cluster.add_broker()
    admin = AdminClient(settings)

    def named() -> bool:
        return node_id in admin.list_topics(timeout=10).brokers
    wait_for(named, 60, f"broker {node_id} in the metadata")
    port = cluster_proxy.broker_port_base + node_id
    brokers = admin.list_topics(timeout=10).brokers
    assert brokers[node_id].host == "127.0.0.1" and brokers[node_id].port == port
    psutil_ports = {c.laddr.port for c in psutil.Process(cluster_proxy.process.pid).net_connections("tcp")
                    if c.status == psutil.CONN_LISTEN}
    assert port in psutil_ports
    assert all(b.port != p for b in brokers.values() for p in broker_ports(cluster))
    topic = unique("on-new-broker")
    for future in admin.create_topics([NewTopic(topic, 1, replica_assignment=[[node_id, 1, 2]])]).values():
        future.result(30)
    producer = Producer({**settings, "acks": "all"})
    producer.produce(topic, value=b"to the newcomer")
    assert producer.flush(30) == 0
    consumer = Consumer({**settings, "group.id": unique("g"), "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = wait_for(lambda: (m := consumer.poll(0.5)) is not None and not m.error() and m.value(), 60, "the message")
    consumer.close()
    assert got == b"to the newcomer"


def readiness_address(proxy: RunningProxy) -> str:
    """The proxy's metrics_listen, from its command line."""
    command = proxy.process.args
    assert isinstance(command, list)
    return str(command[command.index("--metrics-listen") + 1])
