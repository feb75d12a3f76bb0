"""Format, start and stop a single-node KRaft broker whose every file stays inside one folder.

The broker has three listeners on 127.0.0.1, all on free ports unless told otherwise:
PLAINTEXT (clients and benchmarks), SASL_PLAINTEXT (PLAIN and SCRAM, for the proxy's upstream
authentication) and CONTROLLER. Its state is written to ``DIR/kafka.json`` so another process
(``tenantry kafka stop``) can find and stop it.
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
    controller_port: int
    node_id: int = 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"


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


def _properties(dir_: Path, port: int, sasl_port: int, controller_port: int, extra: dict[str, str],
                advertised_sasl_port: int) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": (f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port},"
                      f"CONTROLLER://127.0.0.1:{controller_port}"),
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{advertised_sasl_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SERVICE_USER}="{SERVICE_PASSWORD}";'),
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "log.dirs": str(dir_ / "data"),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "true",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    props.update(extra)
    return "".join(f"{k}={v}\n" for k, v in props.items())


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


def java_command(version: str, dir_: Path, main: str, *args: str, heap: str = "1G") -> list[str]:
    """A java command line for one of Kafka's main classes, logging only inside `dir_`."""
    logs = dir_ / "logs"
    return [
        "java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
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
    """One local broker in `dir_`. Use as a context manager, or call start() and stop()."""

    def __init__(self, dir_: Path | str, version: str = DEFAULT_VERSION, port: int | None = None,
                 extra_properties: dict[str, str] | None = None, sasl_port: int | None = None,
                 advertised_sasl_port: int | None = None) -> None:
        """`advertised_sasl_port` lets a relay in front of the SASL listener be the address brokers give out."""
        self.dir = Path(dir_).resolve()
        self.version = version
        self.requested_port = port
        self.requested_sasl_port = sasl_port
        self.advertised_sasl_port = advertised_sasl_port
        self.extra = extra_properties or {}
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

    def start(self, timeout: float = 90.0) -> BrokerState:
        existing = load_running(self.dir)
        if existing is not None:
            raise KafkaBrokerError(f"a broker already runs from {self.dir} (pid {existing.pid}); stop it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        port = self.requested_port or free_port()
        sasl_port, controller_port = self.requested_sasl_port or free_port(), free_port()
        (self.dir / "log4j2.properties").write_text(_LOG4J2)
        (self.dir / "log4j.properties").write_text(_LOG4J1)
        config = self.dir / "server.properties"
        config.write_text(_properties(self.dir, port, sasl_port, controller_port, self.extra,
                                      self.advertised_sasl_port or sasl_port))
        if not (self.dir / "data" / "meta.properties").exists():
            self._format(config)
        stdout = open(self.dir / "logs" / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        self._process = subprocess.Popen(
            java_command(self.version, self.dir, "kafka.Kafka", str(config)),
            stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )
        stdout.close()
        self.state = BrokerState(self.version, self._process.pid, port, sasl_port, controller_port)
        deadline = time.monotonic() + timeout
        while not api_versions_answers("127.0.0.1", port):
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
        cluster_id = _cluster_id()
        scram = [f"SCRAM-SHA-{bits}=[name={SERVICE_USER},password={SERVICE_PASSWORD}]" for bits in (256, 512)]
        args = ["format", "-t", cluster_id, "-c", str(config)]
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


def _cluster_id() -> str:
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
