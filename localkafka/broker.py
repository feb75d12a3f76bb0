"""Format, start and stop one KRaft node of a local Kafka cluster, every file of it inside one folder.

Alone (the default) the node is a combined broker and controller. A broker has these listeners on
127.0.0.1, each on a free port unless told otherwise: PLAINTEXT (clients and benchmarks), SASL_PLAINTEXT
(PLAIN and SCRAM, for the proxy's upstream authentication) and, with TLS, SSL (client certificates
required, mTLS) and SASL_SSL; a controller has CONTROLLER. Its state is written to ``DIR/kafka.json`` so
another process (``tenantry kafka stop``) can find and stop it. Several nodes make a cluster:
:mod:`tenantry.localkafka.cluster`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from tenantry.localkafka.jars import DEFAULT_VERSION, kafka_classpath

SERVICE_USER = "tenantry-proxy"
SERVICE_PASSWORD = "tenantry-proxy-secret"  # a throwaway local broker's credential, never a real one
STATE_FILE = "kafka.json"


class KafkaBrokerError(RuntimeError):
    """The local broker could not be started or stopped; the message says why and where its log is."""


@dataclass
class BrokerState:
    version: str
    pid: int
    port: int
    sasl_port: int
    controller_port: int  # 0: a broker of a cluster whose controller runs apart
    node_id: int = 1
    ssl_port: int = 0  # 0: no TLS listeners
    sasl_ssl_port: int = 0
    ca_file: str = ""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def listeners(self) -> dict[str, str]:
        """Each client listener's address, by lower-case security protocol (as cluster.json names them)."""
        ports = {"plaintext": self.port, "sasl_plaintext": self.sasl_port, "ssl": self.ssl_port,
                 "sasl_ssl": self.sasl_ssl_port}
        return {name: f"127.0.0.1:{port}" for name, port in ports.items() if port}


#: KRaft's StandardAuthorizer, with the proxy's service user (and the PLAINTEXT listener's ANONYMOUS, the
#: controller's and the tests' own) as super users: the proxy then logs tenants in as their own broker users.
AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": f"User:ANONYMOUS;User:{SERVICE_USER}",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Maps an mTLS client's certificate subject ("CN=tenantry-proxy,O=...") to the user named by its CN.
PRINCIPAL_RULES = "RULE:^CN=([^,]+),.*$/$1/,RULE:^CN=([^,]+)$/$1/,DEFAULT"


@dataclass(frozen=True)
class Ports:
    """A node's ports; 0 for a listener it does not have. A broker of a cluster keeps them across restarts."""

    port: int = 0
    sasl_port: int = 0
    controller_port: int = 0
    ssl_port: int = 0
    sasl_ssl_port: int = 0


@dataclass(frozen=True)
class Tls:
    """The PEM files of a node's TLS listeners: its certificate and key in one bundle, and the CA it trusts."""

    bundle: Path
    ca_file: Path


def _properties(dir_: Path, node_id: int, ports: Ports, voters: str, extra: dict[str, str],
                advertised_sasl_port: int, tls: Tls | None, replicas: int) -> str:
    listeners: dict[str, int] = {"PLAINTEXT": ports.port, "SASL_PLAINTEXT": ports.sasl_port,
                                 "SSL": ports.ssl_port, "SASL_SSL": ports.sasl_ssl_port}
    listeners = {name: port for name, port in listeners.items() if port}
    advertised = {**listeners, "SASL_PLAINTEXT": advertised_sasl_port} if listeners else {}
    roles = ["broker"] if listeners else []
    if ports.controller_port:
        roles.append("controller")
        listeners["CONTROLLER"] = ports.controller_port
    props = {
        "process.roles": ",".join(roles),
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": ",".join(f"{name}://127.0.0.1:{port}" for name, port in listeners.items()),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,"
                                          "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "log.dirs": str(dir_ / "data"),
    }
    if advertised:
        props["advertised.listeners"] = ",".join(f"{name}://127.0.0.1:{port}" for name, port in advertised.items())
        props["inter.broker.listener.name"] = "PLAINTEXT"
        props.update(_sasl_properties(tls is not None))
    if tls is not None:
        props.update({
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(tls.bundle),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.ca_file),
            "listener.name.ssl.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": PRINCIPAL_RULES,
        })
    min_isr = str(min(2, replicas))
    props.update({
        "num.partitions": "1",
        "default.replication.factor": str(replicas),
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "log.segment.bytes": str(64 * 1024 * 1024),
    })
    props.update(extra)
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _sasl_properties(tls: bool) -> dict[str, str]:
    """PLAIN (the service user) and SCRAM (users created at format time or by the proxy) on each SASL listener."""
    props = {"sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"}
    for listener in ("sasl_plaintext", "sasl_ssl") if tls else ("sasl_plaintext",):
        props[f"listener.name.{listener}.plain.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SERVICE_USER}="{SERVICE_PASSWORD}";')
        for bits in (256, 512):
            props[f"listener.name.{listener}.scram-sha-{bits}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    return props


_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""

_LOG4J1 = """log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
"""


def java_command(version: str, dir_: Path, main: str, *args: str, heap: str = "1G",
                 jvm_options: tuple[str, ...] = ()) -> list[str]:
    """A java command line for one of Kafka's main classes, logging only inside `dir_`."""
    logs = dir_ / "logs"
    return [
        "java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true", *jvm_options,
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={dir_ / 'log4j2.properties'}",
        f"-Dlog4j.configuration=file:{dir_ / 'log4j.properties'}",
        "-cp", kafka_classpath(version), main, *args,
    ]


def api_versions_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka broker at host:port answers an ApiVersions v0 request."""
    request = struct.pack(">hhih", 18, 0, 1, 5) + b"probe"
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            body = recv_exact(s, size)
            return struct.unpack(">ih", body[:6]) == (1, 0)
    except (OSError, struct.error):
        return False


def recv_exact(s: socket.socket, n: int) -> bytes:
    """Exactly n bytes from a blocking socket; OSError if the peer closes first."""
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


class KafkaBroker:
    """One local node in `dir_`. Use as a context manager, or call start() and stop().

    Alone it is a combined broker and controller. In a cluster (:class:`~tenantry.localkafka.cluster.
    KafkaCluster`) it is a broker of an outside controller quorum (`voters`, with `controller_port` 0),
    or a controller only (`broker=False`).
    """

    def __init__(self, dir_: Path | str, version: str = DEFAULT_VERSION, port: int | None = None,
                 extra_properties: dict[str, str] | None = None, sasl_port: int | None = None,
                 advertised_sasl_port: int | None = None, tls: Tls | None = None, node_id: int = 1,
                 voters: str | None = None, ports: Ports | None = None, broker: bool = True,
                 replicas: int = 1, cluster_id: str | None = None, jvm_options: tuple[str, ...] = ()) -> None:
        """`advertised_sasl_port` lets a relay in front of the SASL listener be the address brokers give out;
        `ports` fixes every port (a restarted cluster member keeps its own)."""
        self.dir = Path(dir_).resolve()
        self.version = version
        self.requested_port = port
        self.requested_sasl_port = sasl_port
        self.advertised_sasl_port = advertised_sasl_port
        self.extra = extra_properties or {}
        self.tls = tls
        self.node_id = node_id
        self.voters = voters
        self.requested_ports = ports
        self.is_broker = broker
        self.replicas = replicas
        self.cluster_id = cluster_id
        self.jvm_options = jvm_options
        self.state: BrokerState | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        assert self.state, "broker not started"
        return self.state.bootstrap

    @property
    def sasl_bootstrap(self) -> str:
        assert self.state, "broker not started"
        return self.state.sasl_bootstrap

    def _ports(self) -> Ports:
        if self.requested_ports is not None:
            return self.requested_ports
        if not self.is_broker:
            return Ports(controller_port=free_port())
        return Ports(port=self.requested_port or free_port(), sasl_port=self.requested_sasl_port or free_port(),
                     controller_port=0 if self.voters else free_port(),
                     ssl_port=free_port() if self.tls else 0, sasl_ssl_port=free_port() if self.tls else 0)

    def start(self, timeout: float = 90.0) -> BrokerState:
        existing = load_running(self.dir)
        if existing is not None:
            raise KafkaBrokerError(f"a broker already runs from {self.dir} (pid {existing.pid}); stop it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        ports = self._ports()
        voters = self.voters or f"{self.node_id}@127.0.0.1:{ports.controller_port}"
        (self.dir / "log4j2.properties").write_text(_LOG4J2)
        (self.dir / "log4j.properties").write_text(_LOG4J1)
        config = self.dir / "server.properties"
        config.write_text(_properties(self.dir, self.node_id, ports, voters, self.extra,
                                      self.advertised_sasl_port or ports.sasl_port, self.tls, self.replicas))
        if not (self.dir / "data" / "meta.properties").exists():
            self._format(config)
        stdout = open(self.dir / "logs" / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        self._process = subprocess.Popen(
            java_command(self.version, self.dir, "kafka.Kafka", str(config), jvm_options=self.jvm_options),
            stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )
        stdout.close()
        self.state = BrokerState(self.version, self._process.pid, ports.port, ports.sasl_port, ports.controller_port,
                                 self.node_id, ports.ssl_port, ports.sasl_ssl_port,
                                 str(self.tls.ca_file) if self.tls else "")
        deadline = time.monotonic() + timeout
        while not api_versions_answers("127.0.0.1", ports.port or ports.controller_port):
            if self._process.poll() is not None:
                raise KafkaBrokerError(f"Kafka exited with {self._process.returncode}; "
                                       f"see {self.dir / 'logs'}")
            if time.monotonic() > deadline:
                self.stop()
                raise KafkaBrokerError(f"Kafka did not answer within {timeout}s; see {self.dir / 'logs'}")
            time.sleep(0.2)
        (self.dir / STATE_FILE).write_text(json.dumps(asdict(self.state)))
        return self.state

    def _format(self, config: Path) -> None:
        scram = [f"SCRAM-SHA-{bits}=[name={SERVICE_USER},password={SERVICE_PASSWORD}]" for bits in (256, 512)]
        args = ["format", "-t", self.cluster_id or new_cluster_id(), "-c", str(config)]
        for s in scram:
            args += ["--add-scram", s]
        result = subprocess.run(java_command(self.version, self.dir, "kafka.tools.StorageTool", *args,
                                             heap="256m"),
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise KafkaBrokerError(f"formatting storage failed:\n{result.stdout}{result.stderr}")

    def stop(self, timeout: float = 30.0) -> None:
        state = self.state or load_running(self.dir)
        if state is not None:
            _terminate(state.pid, timeout)
            if self._process is not None:
                self._process.wait()
        (self.dir / STATE_FILE).unlink(missing_ok=True)
        self.state = None
        self._process = None

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def new_cluster_id() -> str:
    """A random cluster id as Kafka makes them (Uuid.randomUuid): base64 of 16 bytes, never starting
    with "-", which the storage tool's argument parser would take for an option (1 run in 64 failed)."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _terminate(pid: int, timeout: float) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def load_running(dir_: Path | str) -> BrokerState | None:
    """The state of the broker started from `dir_`, if its process still runs."""
    path = Path(dir_) / STATE_FILE
    try:
        state = BrokerState(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return state if _alive(state.pid) else None
