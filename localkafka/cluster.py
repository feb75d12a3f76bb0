"""A local KRaft cluster: one node alone (the default), or a controller and N brokers; TLS on request.

``DIR/cluster.json`` describes it for tests, scripts and a later ``tenantry kafka start --broker ID``:
each broker's listener addresses by security protocol, the CA file, the mTLS client certificate the proxy
may use, and the service user. A broker stopped alone restarts on the same ports, as a broker of a real
cluster comes back at its advertised address after a rolling restart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenantry.localkafka.broker import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    KafkaBroker,
    KafkaBrokerError,
    Ports,
    Tls,
    free_port,
    load_running,
    new_cluster_id,
)
from tenantry.localkafka.certs import Authority
from tenantry.localkafka.jars import DEFAULT_VERSION

CLUSTER_FILE = "cluster.json"
CONTROLLER_ID = 1000  # apart from the brokers' ids 1..N, which clients see
PROXY_CLIENT = "tenantry-proxy"  # the mTLS client certificate's CN: the same super user as SASL's service user


@dataclass
class ClusterSpec:
    """What cluster.json records: enough to start any member again exactly as it was."""

    version: str
    brokers: int
    tls: bool
    cluster_id: str
    ports: dict[str, dict[str, int]]  # node id -> Ports fields
    extra_properties: dict[str, str] = field(default_factory=dict)


class KafkaCluster:
    """The cluster in `dir_`; with brokers=1 a single combined node living in `dir_` itself."""

    def __init__(self, dir_: Path | str, brokers: int = 1, tls: bool = False, version: str = DEFAULT_VERSION,
                 extra_properties: dict[str, str] | None = None, port: int | None = None) -> None:
        if brokers < 1:
            raise KafkaBrokerError(f"a cluster needs at least one broker, not {brokers}")
        self.dir = Path(dir_).resolve()
        self.spec = ClusterSpec(version, brokers, tls, "", {}, extra_properties or {})
        self._first_port = port
        self.nodes: dict[int, KafkaBroker] = {}

    # -- the recorded description ------------------------------------------------------------------------
    @classmethod
    def load(cls, dir_: Path | str) -> KafkaCluster:
        """The cluster cluster.json in `dir_` describes (raises KafkaBrokerError when there is none)."""
        path = Path(dir_) / CLUSTER_FILE
        try:
            recorded = json.loads(path.read_text())
            spec = ClusterSpec(**recorded["spec"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KafkaBrokerError(f"no cluster is described in {path} ({exc})") from None
        cluster = cls(dir_, spec.brokers, spec.tls, spec.version, spec.extra_properties)
        cluster.spec = spec
        return cluster

    @property
    def single(self) -> bool:
        return self.spec.brokers == 1

    @property
    def broker_ids(self) -> list[int]:
        return list(range(1, self.spec.brokers + 1))

    def _node_dir(self, node_id: int) -> Path:
        if self.single:
            return self.dir
        return self.dir / ("controller" if node_id == CONTROLLER_ID else f"broker-{node_id}")

    @property
    def authority(self) -> Authority:
        return Authority(self.dir / "tls")

    def description(self) -> dict[str, Any]:
        """cluster.json's content: the part scripts read, and the spec to restart members from."""
        tls_dir = self.dir / "tls"
        brokers = {}
        for node_id in self.broker_ids:
            ports = Ports(**self.spec.ports[str(node_id)])
            listeners = {"plaintext": ports.port, "sasl_plaintext": ports.sasl_port, "ssl": ports.ssl_port,
                         "sasl_ssl": ports.sasl_ssl_port}
            brokers[str(node_id)] = {name: f"127.0.0.1:{port}" for name, port in listeners.items() if port}
        return {
            "brokers": brokers,
            "ca_file": str(tls_dir / "ca.pem") if self.spec.tls else None,
            "client_certfile": str(tls_dir / f"{PROXY_CLIENT}.pem") if self.spec.tls else None,
            "client_keyfile": str(tls_dir / f"{PROXY_CLIENT}.key") if self.spec.tls else None,
            "service_user": SERVICE_USER,
            "service_password": SERVICE_PASSWORD,
            "spec": self.spec.__dict__,
        }

    def bootstrap(self, listener: str = "plaintext") -> str:
        """Every broker's address on one listener ("plaintext", "sasl_plaintext", "ssl", "sasl_ssl")."""
        return ",".join(b[listener] for b in self.description()["brokers"].values())

    @property
    def ca_file(self) -> Path:
        return self.dir / "tls" / "ca.pem"

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Start every member (formatting on first start); return cluster.json's content."""
        if self.running():
            raise KafkaBrokerError(f"a cluster already runs from {self.dir}; stop it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.spec.cluster_id:
            self._plan()
        try:
            if not self.single:
                self._node(CONTROLLER_ID).start()
            for node_id in self.broker_ids:
                self._node(node_id).start()
        except KafkaBrokerError:
            self.stop()
            raise
        return self.description()

    def _plan(self) -> None:
        """Choose the cluster id and every port once, and issue the certificates."""
        self.spec.cluster_id = new_cluster_id()
        for node_id in self.broker_ids:
            self.spec.ports[str(node_id)] = self._new_ports(node_id).__dict__
        if not self.single:
            self.spec.ports[str(CONTROLLER_ID)] = Ports(controller_port=free_port()).__dict__
        if self.spec.tls:
            authority = self.authority
            authority.issue("broker", "localhost", hosts=("localhost", "127.0.0.1", "::1"))
            authority.issue(PROXY_CLIENT, PROXY_CLIENT, client=True)
        self._record()

    def _new_ports(self, node_id: int) -> Ports:
        tls = self.spec.tls
        first = self._first_port if node_id == 1 and not self.spec.ports else None
        return Ports(port=first or free_port(), sasl_port=free_port(),
                     controller_port=free_port() if self.single else 0,
                     ssl_port=free_port() if tls else 0, sasl_ssl_port=free_port() if tls else 0)

    def _record(self) -> None:
        (self.dir / CLUSTER_FILE).write_text(json.dumps(self.description(), indent=2))

    def _node(self, node_id: int) -> KafkaBroker:
        node = self.nodes.get(node_id)
        if node is not None:
            return node
        ports = Ports(**self.spec.ports[str(node_id)])
        controller = Ports(**self.spec.ports[str(CONTROLLER_ID)]) if not self.single else None
        tls = Tls(self.dir / "tls" / "broker-bundle.pem", self.ca_file) if self.spec.tls else None
        node = KafkaBroker(
            self._node_dir(node_id), version=self.spec.version, extra_properties=self.spec.extra_properties,
            tls=tls if node_id != CONTROLLER_ID else None, node_id=node_id, ports=ports,
            voters=f"{CONTROLLER_ID}@127.0.0.1:{controller.controller_port}" if controller else None,
            broker=node_id != CONTROLLER_ID, replicas=min(3, self.spec.brokers), cluster_id=self.spec.cluster_id)
        self.nodes[node_id] = node
        return node

    def stop_broker(self, node_id: int) -> None:
        """Stop one broker (SIGTERM: a controlled shutdown that moves its leaders first)."""
        self._check_member(node_id)
        self._node(node_id).stop()

    def start_broker(self, node_id: int, new_address: bool = False) -> None:
        """Start a stopped broker again, on its own ports, or with `new_address` on new ones (as a broker
        replaced by a new machine comes back: same id and data, another address)."""
        self._check_member(node_id)
        if load_running(self._node_dir(node_id)) is not None:
            raise KafkaBrokerError(f"broker {node_id} already runs")
        if new_address:
            self.nodes.pop(node_id, None)
            self.spec.ports[str(node_id)] = self._new_ports(node_id).__dict__
            self._record()
        self._node(node_id).start()

    def add_broker(self) -> int:
        """Start one more broker (of a cluster with a separate controller); its id."""
        if self.single:
            raise KafkaBrokerError("a single combined node cannot grow; start the cluster with --brokers N")
        node_id = self.spec.brokers + 1
        self.spec.brokers = node_id
        self.spec.ports[str(node_id)] = self._new_ports(node_id).__dict__
        self._record()
        self._node(node_id).start()
        return node_id

    def _check_member(self, node_id: int) -> None:
        if node_id not in self.broker_ids:
            raise KafkaBrokerError(f"the cluster in {self.dir} has brokers {self.broker_ids}, not {node_id}")

    def stop(self) -> None:
        """Stop the brokers, then the controller."""
        for node_id in [*self.broker_ids, CONTROLLER_ID]:
            if node_id == CONTROLLER_ID and self.single:
                continue
            if str(node_id) in self.spec.ports:
                self._node(node_id).stop()

    def running(self) -> bool:
        """Whether any member runs (the controller too: a cluster whose brokers all stopped still has it)."""
        members = self.broker_ids if self.single else [*self.broker_ids, CONTROLLER_ID]
        return any(load_running(self._node_dir(n)) is not None for n in members)

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
