"""A real single-node Apache Kafka broker for tests, the demo and benchmarks, built from Maven Central jars."""

from tenantry.localkafka.broker import KafkaBroker, KafkaBrokerError, load_running
from tenantry.localkafka.jars import DEFAULT_VERSION, SUPPORTED_VERSIONS, kafka_classpath, resolve_jars

__all__ = [
    "DEFAULT_VERSION",
    "SUPPORTED_VERSIONS",
    "KafkaBroker",
    "KafkaBrokerError",
    "kafka_classpath",
    "load_running",
    "resolve_jars",
]
