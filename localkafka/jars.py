"""Resolve Apache Kafka's broker and tools jars from Maven Central into a per-version cache folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# 4.4.0's broker jar is on Maven Central but kafka-tools 4.4.0 is not, so 4.3.1 is the newest complete 4.x.
DEFAULT_VERSION = "4.3.1"
SUPPORTED_VERSIONS = ("4.3.1", "3.9.2")

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tenantry.local</groupId><artifactId>kafka-dist</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{v}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId>
      <version>{v}</version></dependency>
  </dependencies>
</project>
"""


def cache_root() -> Path:
    """Where resolved jars live; TENANTRY_KAFKA_CACHE overrides ~/.cache/tenantry/kafka."""
    env = os.environ.get("TENANTRY_KAFKA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tenantry" / "kafka"


def resolve_jars(version: str = DEFAULT_VERSION) -> Path:
    """Return the folder holding every jar of Kafka `version`, downloading it with Maven on first use."""
    lib = cache_root() / version / "lib"
    if (lib / f"kafka_2.13-{version}.jar").exists() and (lib / f"kafka-tools-{version}.jar").exists():
        return lib
    return fetch_from_maven(_POM.format(v=version), lib, f"Kafka {version}")


def fetch_from_maven(pom: str, lib: Path, what: str) -> Path:
    """Copy every dependency of `pom` from Maven Central into `lib` (replaced whole, or not at all)."""
    if shutil.which("mvn") is None:
        raise RuntimeError(f"Maven (mvn) is needed to fetch {what} from Maven Central; install it first")
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        pom_file = Path(tmp) / "pom.xml"
        pom_file.write_text(pom)
        staging = Path(tmp) / "lib"
        result = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(pom_file), "dependency:copy-dependencies",
             f"-DoutputDirectory={staging}"],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"could not resolve {what} from Maven Central:\n{result.stdout}{result.stderr}")
        if lib.exists():
            shutil.rmtree(lib)
        staging.rename(lib)  # atomic: a half-downloaded folder is never mistaken for a complete one
    return lib


def kafka_classpath(version: str = DEFAULT_VERSION) -> str:
    """A java -cp value with every jar of that Kafka version."""
    return str(resolve_jars(version) / "*")


def schema_jar(version: str = DEFAULT_VERSION) -> Path:
    """The kafka-clients jar, which carries the official message schemas the codec is generated from."""
    return resolve_jars(version) / f"kafka-clients-{version}.jar"
