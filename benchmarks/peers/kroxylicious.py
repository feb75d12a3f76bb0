"""Kroxylicious as peer columns: in pass-through (ceiling and latency), and with its multi-tenant filter
and its record-encryption filter (ceiling).

Maven Central carries its runtime (io.kroxylicious:kroxylicious-runtime; 0.12.0 is the newest there) and
its multi-tenant filter (io.kroxylicious:kroxylicious-multitenant), but not its launcher application, so
a ten-line Java main starts it from a YAML config. It runs one virtual cluster, the port of each broker
identifying it, as Tenantry does; with `multitenant`, the filter prefixes topic, group and transactional
ids with the virtual cluster's name, which is the nearest Kroxylicious comes to Tenantry's tenant mode
(it has no logins at the proxy). With `encryption`, its RecordEncryption filter (AES-GCM, a data key
per topic wrapped by a KEK) encrypts every topic's records under one KEK of its in-memory KMS, which
the Java main creates before the proxy starts (the only KMS that needs no server here).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.processes import Served, serving
from tenantry.localkafka.broker import free_port
from tenantry.localkafka.jars import cache_root, fetch_from_maven

VERSION = "0.12.0"
_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tenantry.bench</groupId><artifactId>kroxylicious-peer</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.kroxylicious</groupId><artifactId>kroxylicious-runtime</artifactId>
      <version>{VERSION}</version></dependency>
    <dependency><groupId>io.kroxylicious</groupId><artifactId>kroxylicious-multitenant</artifactId>
      <version>{VERSION}</version></dependency>
    <dependency><groupId>io.kroxylicious</groupId><artifactId>kroxylicious-record-encryption</artifactId>
      <version>{VERSION}</version></dependency>
    <dependency><groupId>io.kroxylicious</groupId><artifactId>kroxylicious-kms-provider-kroxylicious-inmemory</artifactId>
      <version>{VERSION}</version></dependency>
  </dependencies>
</project>
"""
MAIN = Path(__file__).with_name("KroxyliciousMain.java")
_KMS = "tenantry-bench"  # the in-memory KMS's name, and its one KEK's alias


def jars() -> Path:
    lib = cache_root().parent / "kroxylicious" / VERSION / "lib"
    if all((lib / f"kroxylicious-{part}-{VERSION}.jar").exists()
           for part in ("runtime", "multitenant", "record-encryption", "kms-provider-kroxylicious-inmemory")):
        return lib
    return fetch_from_maven(_POM, lib, f"Kroxylicious {VERSION}")


@contextmanager
def kroxylicious(upstream: str, workdir: Path, filters: str = "") -> Iterator[Served]:
    """A running Kroxylicious in front of `upstream` (PLAINTEXT), with `filters` ("", "multitenant" or
    "encryption"); yields its process and bootstrap address."""
    port = free_port()
    config = workdir / f"kroxylicious-{port}.yaml"
    definitions = {"": "", "multitenant": """filterDefinitions:
  - name: multitenant
    type: MultiTenant
    config:
      prefixResourceNameSeparator: "-"
defaultFilters:
  - multitenant
""", "encryption": f"""filterDefinitions:
  - name: encryption
    type: RecordEncryption
    config:
      kms: IntegrationTestingKmsService
      kmsConfig:
        name: {_KMS}
      selector: TemplateKekSelector
      selectorConfig:
        template: "{_KMS}"
defaultFilters:
  - encryption
"""}[filters]
    config.write_text(definitions + f"""virtualClusters:
  - name: bench
    targetCluster:
      bootstrapServers: {upstream}
    gateways:
      - name: default
        portIdentifiesNode:
          bootstrapAddress: 127.0.0.1:{port}
          nodeStartPort: {port + 1}
""")
    classpath = ":".join(str(p) for p in sorted(jars().glob("*.jar")))
    args = ["java", "-Xmx1G", "-cp", classpath, str(MAIN), str(config), *((_KMS,) if filters == "encryption" else ())]
    with serving(args, port, workdir / f"kroxylicious-{port}.log", "Kroxylicious", startup_seconds=90) as process:
        yield Served(process, f"127.0.0.1:{port}")
