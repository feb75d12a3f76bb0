"""Guard rails tried with real clients against the real broker: each is refused with the right error.

Every tenant here has one kind of limit, written into the config file as an operator would.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import warnings

import pytest
import tomli_w
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic

from .conftest import GROUP_PROTOCOLS, start_proxy, stop_checked, unique
from .helpers import wait_for
from .test_java_client import run_java

pytestmark = pytest.mark.integration
DAY = 86_400_000
PASSWORD = "limits-secret"
LIMITS = {
    "counted": {"max_topics": 2, "max_partitions": 5, "max_partitions_per_topic": 3, "default_partitions": 2},
    "careful": {"replication_factor": 1, "min_insync_replicas": 1, "min_retention_ms": 3_600_000,
                "max_retention_ms": 7 * DAY, "default_retention_ms": DAY, "cleanup_policies": ["delete"],
                "max_storage_bytes": 200_000_000_000},
    "grouped": {"max_groups": 1},
    "joined-classic": {"max_groups": 1},
    "joined-consumer": {"max_groups": 1},
    "hasty": {"topic_mutations_per_sec": 0.2},  # a burst of 2 partitions, then one every 5 s
    "tightened": {"max_topics": 5},
}
QUOTAS = {"careful": {"produce_bytes_per_sec": 1_000_000}}


@pytest.fixture(scope="module")
def limits_proxy(kafka, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("limits-proxy")
    config = workdir / "tenantry.toml"
    cli = [sys.executable, "-m", "tenantry.proxy.cli"]
    for tenant in LIMITS:
        subprocess.run([*cli, "tenant", "add", tenant, "--config", str(config)], check=True, capture_output=True)
        subprocess.run([*cli, "user", "add", tenant, f"{tenant}-user", "--config", str(config)],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    data = tomllib.loads(config.read_text())
    for entry in data["tenants"]:
        entry["limits"] = LIMITS[entry["id"]]
        if entry["id"] in QUOTAS:
            entry["quotas"] = QUOTAS[entry["id"]]
    config.write_text(tomli_w.dumps(data))
    running = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                          "--config-poll-seconds", "0.2")
    running.config = config
    try:
        yield running
    finally:
        stop_checked(running)


def login(proxy, tenant: str) -> dict[str, object]:
    return {"bootstrap.servers": proxy.bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": f"{tenant}-user", "sasl.password": PASSWORD}


def outcome(future) -> KafkaError | None:
    try:
        future.result(30)
        return None
    except KafkaException as exc:
        return exc.args[0]


def create(admin: AdminClient, *topics: NewTopic) -> dict[str, KafkaError | None]:
    return {name: outcome(f) for name, f in admin.create_topics(list(topics)).items()}


def assert_policy(error: KafkaError | None, text: str) -> None:
    assert error is not None, f"expected POLICY_VIOLATION ({text}), the request succeeded"
    assert error.code() == KafkaError.POLICY_VIOLATION, error
    assert text in error.str(), error.str()


def partitions_of(admin: AdminClient, topic: str) -> int:
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def test_topic_and_partition_limits(limits_proxy):
    admin = AdminClient(login(limits_proxy, "counted"))
    a, b, c = unique("a"), unique("b"), unique("c")
    assert create(admin, NewTopic(a)) == {a: None}  # no partition count given: the default, 2
    assert partitions_of(admin, a) == 2
    assert_policy(create(admin, NewTopic(b, 4))[b], "max_partitions_per_topic is 3")
    assert create(admin, NewTopic(b, 3)) == {b: None}
    assert_policy(create(admin, NewTopic(c, 1))[c], "max_topics is 2 and the tenant has 2 topics")
    grown = admin.create_partitions([NewPartitions(a, 3)])[a]
    assert_policy(outcome(grown), "max_partitions is 5, the tenant has 5 and this would add 1")
    assert outcome(admin.delete_topics([b])[b]) is None
    wait_for(lambda: b not in admin.list_topics(timeout=10).topics, 30, f"{b} to be deleted")
    d, e = unique("d"), unique("e")
    results = create(admin, NewTopic(d, 1), NewTopic(e, 1))  # one request: each topic gets its own answer
    assert results[d] is None
    assert_policy(results[e], "max_topics is 2")


def test_topic_settings_policy(limits_proxy):
    admin = AdminClient(login(limits_proxy, "careful"))

    def refused(text: str, replication: int = -1, **configs: str) -> None:
        name = unique("p")
        assert_policy(create(admin, NewTopic(name, 1, replication, config=configs))[name], text)
    refused("set by the operator to 1; ask for -1 or 1, not 3", replication=3)
    refused("below the minimum, min_retention_ms 3600000", **{"retention.ms": "60000"})
    refused("infinite (-1) is above the maximum", **{"retention.ms": "-1"})
    refused("cleanup.policy 'compact' is not allowed", **{"cleanup.policy": "compact"})
    refused("min.insync.replicas is set by the operator to 1, not 2", **{"min.insync.replicas": "2"})
    refused("storage limit: max_storage_bytes is 200000000000", **{"retention.ms": str(5 * DAY)})

    name = unique("ok")
    assert create(admin, NewTopic(name, 1)) == {name: None}
    resource = ConfigResource("topic", name)

    def described() -> dict[str, ConfigEntry] | None:
        try:
            return admin.describe_configs([resource])[resource].result(30)  # type: ignore[no-any-return]
        except KafkaException as exc:  # under KRaft the broker learns of a new topic just after CreateTopics
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # answers; a fast client can ask first
                raise
            return None
    configs = wait_for(described, what=f"the configs of {name}")
    assert configs["retention.ms"].value == str(DAY)  # the operator's default
    assert configs["min.insync.replicas"].value == "1"

    def alter(key: str, value: str) -> KafkaError | None:
        change = ConfigResource("topic", name, incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)])
        return outcome(admin.incremental_alter_configs([change])[change])
    assert_policy(alter("retention.ms", "60000"), "below the minimum")
    # AlterConfigs replaces the whole config: what it leaves out falls back to the defaults, and the
    # broker's 7-day retention passes here, so a full replacement naming a bad policy is what fails.
    whole = ConfigResource("topic", name, set_config={"retention.ms": str(DAY), "cleanup.policy": "compact"})
    with warnings.catch_warnings():  # deprecated in favour of the incremental API, and still used: test it
        warnings.simplefilter("ignore", DeprecationWarning)
        futures = admin.alter_configs([whole])
    assert_policy(outcome(futures[whole]), "cleanup.policy 'compact' is not allowed")
    assert_policy(alter("cleanup.policy", "compact"), "not allowed")
    assert alter("retention.ms", str(2 * DAY)) is None


def test_group_limit(limits_proxy):
    settings = login(limits_proxy, "grouped")
    topic = unique("g")
    assert create(AdminClient(settings), NewTopic(topic, 1)) == {topic: None}

    def commit(group: str) -> None:
        consumer = Consumer({**settings, "group.id": group, "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        finally:
            consumer.close()
    first = unique("first")
    commit(first)
    with pytest.raises(KafkaException) as refused:
        commit(unique("second"))
    assert refused.value.args[0].code() == KafkaError.POLICY_VIOLATION
    commit(first)  # the tenant's existing group still works


@pytest.mark.parametrize("protocol", GROUP_PROTOCOLS)
def test_group_limit_with_kafka_consumer(limits_proxy, protocol):
    tenant = f"joined-{protocol}"
    topic = unique("join")
    assert create(AdminClient(login(limits_proxy, tenant)), NewTopic(topic, 1)) == {topic: None}
    sasl = f"SCRAM-SHA-512:{tenant}-user:{PASSWORD}"
    assert run_java("join", limits_proxy.bootstrap, topic, "first", protocol, sasl=sasl).startswith("JOINED")
    out = run_java("join", limits_proxy.bootstrap, topic, "second", protocol, sasl=sasl)
    print(f"\n{protocol} consumer joining a second group: {out.strip()}")
    assert out.startswith("ERROR"), out
    assert "policy" in out.lower(), out
    assert run_java("join", limits_proxy.bootstrap, topic, "first", protocol, sasl=sasl).startswith("JOINED")


def test_topic_mutation_rate_with_kafka_admin_client(limits_proxy):
    # A burst of 2 partitions at 0.2/s: the first create (3 partitions) is admitted while the bucket holds
    # tokens and leaves it 1 in debt; the next, on another connection, is refused until the debt clears.
    out = run_java("mutations", limits_proxy.bootstrap, unique("m"), "2", "3",
                   sasl=f"SCRAM-SHA-512:hasty-user:{PASSWORD}")
    first, second, deleting = out.splitlines()[:3]
    assert first.startswith("CREATED"), out
    assert second.startswith("ERROR") and "ThrottlingQuotaExceededException" in second, out
    assert "topic_mutations_per_sec is 0.2" in second, out
    assert deleting.startswith("ERROR") and "ThrottlingQuotaExceededException" in deleting, out  # deletes count too


def test_limits_change_live_for_connected_clients(limits_proxy):
    admin = AdminClient(login(limits_proxy, "tightened"))  # one client, connected throughout
    first, second = unique("first"), unique("second")
    assert create(admin, NewTopic(first, 1)) == {first: None}
    before = limits_proxy.log_text().count("reloaded")
    data = tomllib.loads(limits_proxy.config.read_text())
    next(t for t in data["tenants"] if t["id"] == "tightened")["limits"]["max_topics"] = 1
    limits_proxy.config.write_text(tomli_w.dumps(data))
    wait_for(lambda: limits_proxy.log_text().count("reloaded") > before, 10, "the proxy to reload its config")
    assert_policy(create(admin, NewTopic(second, 1))[second], "max_topics is 1 and the tenant has 1 topics")
