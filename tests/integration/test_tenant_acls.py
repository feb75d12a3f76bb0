"""Tenant ACLs end to end: kafka-acls and the Admin API through the proxy, a read-only consumer, a write-only
producer, a second tenant that sees none of it, ACLs that survive a restart, and the proxy's answers compared
with a real broker's StandardAuthorizer holding the same rules.

Tenant acme runs with ``authorization = "acls"``; alice administers it and alicia is checked. Clients are
librdkafka (confluent-kafka) and Kafka's own AclCommand (the Java Admin client).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from tenantry.localkafka import KafkaBroker, kafka_classpath
from tenantry.localkafka.broker import AUTHORIZER

from .conftest import (
    KAFKA_VERSION,
    TENANT_USERS,
    RunningProxy,
    client_config,
    start_proxy,
    stop_checked,
    unique,
    write_tenants,
)

pytestmark = pytest.mark.integration
ADMIN, CHECKED, OTHER_TENANT = "alice", "alicia", "bob"
DIRECT_USER, DIRECT_PASSWORD = "reader", "reader-secret"
#: Kafka 4 rewrote kafka-acls in Java, in the tools jar; before, it was Scala, in the broker's.
ACL_COMMAND = ("org.apache.kafka.tools.AclCommand" if int(KAFKA_VERSION.split(".")[0]) >= 4
               else "kafka.admin.AclCommand")


@pytest.fixture(scope="module")
def acl_tenants(kafka: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningProxy, Path]]:
    workdir = tmp_path_factory.mktemp("tenant-acls")
    config = workdir / "tenantry.toml"
    write_tenants(config)
    tenantry = [sys.executable, "-m", "tenantry.proxy.cli"]
    subprocess.run([*tenantry, "tenant", "set", "acme", "--authorization", "acls", "--admin-users", ADMIN,
                    "--config", str(config)], check=True, capture_output=True)
    subprocess.run([*tenantry, "tenant", "set", "globex", "--admin-users", OTHER_TENANT, "--config", str(config)],
                   check=True, capture_output=True)
    proxy = start_proxy(kafka, workdir, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT",
                        "--config-poll-seconds", "0.5")
    try:
        yield proxy, config
    finally:
        stop_checked(proxy)


def rd(proxy: RunningProxy, user: str) -> dict[str, object]:
    return client_config(proxy, user)


def binding(name: str, operation: AclOperation, principal: str, resource: ResourceType = ResourceType.TOPIC,
            pattern: ResourcePatternType = ResourcePatternType.LITERAL,
            permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(resource, name, pattern, principal, "*", operation, permission)


def grant(admin_settings: dict[str, object], *bindings: AclBinding) -> None:
    admin = AdminClient(admin_settings)
    for future in admin.create_acls(list(bindings)).values():
        future.result(30)


def error_of(call: Callable[[], object]) -> int:
    """0 if `call` succeeded, else the Kafka error code it failed with."""
    try:
        call()
    except KafkaException as exc:
        return int(exc.args[0].code())
    return 0


def create_topic(settings: dict[str, object], name: str) -> int:
    admin = AdminClient(settings)
    return error_of(lambda: admin.create_topics([NewTopic(name, 1, 1)])[name].result(30))


def produce_one(settings: dict[str, object], topic: str) -> int:
    """0 if the message was acknowledged, else its delivery error."""
    errors: list[int] = []
    producer = Producer({**settings, "acks": "all", "message.timeout.ms": 15000})
    try:
        producer.produce(topic, value=b"v", on_delivery=lambda err, msg: errors.append(err.code() if err else 0))
        producer.flush(30)
    except KafkaException as exc:  # a fatal error (an idempotent producer refused its producer id) is raised
        return _code(exc)
    return errors[0] if errors else -1


def consume_first(settings: dict[str, object], topic: str, group: str) -> int:
    """0 if a message was read, else the first error the consumer reported (-1: neither within 30 s)."""
    consumer = Consumer({**settings, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return 0
            if error.code() not in (KafkaError._PARTITION_EOF, KafkaError._TRANSPORT):
                return int(error.code())
        return -1
    finally:
        consumer.close()


def visible(settings: dict[str, object], *names: str) -> set[str]:
    admin = AdminClient(settings)
    return set(admin.list_topics(timeout=10).topics) & set(names)


# -- the tools operators and teams already know -------------------------------------------------------
def java_login(user: str, workdir: Path) -> Path:
    """A Java client properties file logging in to the proxy as `user`."""
    _, mechanism, password = TENANT_USERS[user]
    module = "scram.ScramLoginModule" if mechanism.startswith("SCRAM") else "plain.PlainLoginModule"
    properties = workdir / f"{user}.properties"
    properties.write_text(f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\n"
                          f"sasl.jaas.config=org.apache.kafka.common.security.{module} required "
                          f'username="{user}" password="{password}";\n')
    return properties


def acl_command(proxy: RunningProxy, user: str, workdir: Path, *args: str) -> str:
    command = ["java", "-Xmx256m", "-cp", kafka_classpath(KAFKA_VERSION), ACL_COMMAND,
               "--bootstrap-server", proxy.bootstrap, "--command-config", str(java_login(user, workdir)), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_kafka_acls_adds_lists_and_removes_through_the_proxy_and_the_acls_outlive_a_restart(acl_tenants, kafka,
                                                                                             tmp_path):
    proxy, config = acl_tenants
    topic = unique("acl-tool")
    add = ("--add", "--allow-principal", f"User:{CHECKED}", "--operation", "Read", "--topic", topic)
    out = acl_command(proxy, ADMIN, tmp_path, *add)
    assert f"User:{CHECKED}" in out and "READ" in out
    listed = acl_command(proxy, ADMIN, tmp_path, "--list", "--topic", topic)
    assert f"ResourcePattern(resourceType=TOPIC, name={topic}, patternType=LITERAL)" in listed
    assert f"principal=User:{CHECKED}" in listed and "operation=READ" in listed and "permissionType=ALLOW" in listed
    assert topic in config.read_text()  # kept with the tenant's configuration

    # Another proxy started from the same file (a restart) holds them too; the other tenant sees none of them.
    again = start_proxy(kafka, tmp_path, "--config", str(config), "--listener-security-protocol", "SASL_PLAINTEXT")
    try:
        assert f"principal=User:{CHECKED}" in acl_command(again, ADMIN, tmp_path, "--list", "--topic", topic)
        assert topic not in acl_command(again, OTHER_TENANT, tmp_path, "--list")
    finally:
        stop_checked(again)

    acl_command(proxy, ADMIN, tmp_path, "--remove", "--force", *add[1:])
    assert f"User:{CHECKED}" not in acl_command(proxy, ADMIN, tmp_path, "--list", "--topic", topic)
    assert topic not in config.read_text()


def test_the_checked_user_cannot_manage_acls_and_the_other_tenant_cannot_name_ours(acl_tenants):
    proxy, _ = acl_tenants
    denied = binding(unique("t"), AclOperation.READ, f"User:{CHECKED}")
    admin = AdminClient(rd(proxy, CHECKED))
    with pytest.raises(KafkaException) as refused:
        admin.create_acls([denied])[denied].result(30)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    grant(rd(proxy, ADMIN), binding("shared-", AclOperation.READ, f"User:{CHECKED}",
                                    pattern=ResourcePatternType.PREFIXED))
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                                  AclPermissionType.ANY)
    theirs = AdminClient(rd(proxy, OTHER_TENANT))  # held until its future is done: a collected client cancels it
    assert theirs.describe_acls(everything).result(30) == []
    ours = AdminClient(rd(proxy, ADMIN))
    assert any(b.name == "shared-" for b in ours.describe_acls(everything).result(30))


def test_a_read_only_consumer_reads_but_cannot_write_or_create(acl_tenants):
    proxy, _ = acl_tenants
    topic, hidden, group = unique("ro"), unique("ro-hidden"), unique("ro-group")
    admin = rd(proxy, ADMIN)
    assert create_topic(admin, topic) == 0 and create_topic(admin, hidden) == 0
    assert produce_one(admin, topic) == 0
    grant(admin, binding(topic, AclOperation.READ, f"User:{CHECKED}"),
          binding(group, AclOperation.READ, f"User:{CHECKED}", resource=ResourceType.GROUP))
    reader = rd(proxy, CHECKED)
    assert consume_first(reader, topic, group) == 0
    assert produce_one(reader, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert create_topic(reader, unique("ro-new")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert visible(reader, topic, hidden) == {topic}
    assert visible(admin, topic, hidden) == {topic, hidden}
    assert topic not in AdminClient(rd(proxy, OTHER_TENANT)).list_topics(timeout=10).topics


def test_a_write_only_producer_writes_but_cannot_read(acl_tenants):
    proxy, _ = acl_tenants
    topic, group = unique("wo"), unique("wo-group")
    admin = rd(proxy, ADMIN)
    assert create_topic(admin, topic) == 0
    grant(admin, binding(topic, AclOperation.WRITE, f"User:{CHECKED}"))
    writer = rd(proxy, CHECKED)
    assert produce_one({**writer, "enable.idempotence": True}, topic) == 0
    assert consume_first(writer, topic, group) == KafkaError.GROUP_AUTHORIZATION_FAILED
    grant(admin, binding(group, AclOperation.READ, f"User:{CHECKED}", resource=ResourceType.GROUP))
    assert consume_first(writer, topic, group) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert consume_first(admin, topic, unique("wo-admin")) == 0  # the message is there


# -- the same rules on a broker's own authorizer ------------------------------------------------------
@pytest.fixture(scope="module")
def authorizing_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path_factory.mktemp("authorizing-kafka"), version=KAFKA_VERSION,
                         extra_properties=AUTHORIZER)
    broker.start()
    try:
        superuser = AdminClient({"bootstrap.servers": broker.bootstrap})
        upsert = UserScramCredentialUpsertion(DIRECT_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                              DIRECT_PASSWORD.encode())
        for future in superuser.alter_user_scram_credentials([upsert]).values():
            future.result(30)
        yield broker
    finally:
        broker.stop()


def both_sides(proxy: RunningProxy, broker: KafkaBroker) -> dict[str, tuple[dict[str, object], dict[str, object], str]]:
    """(admin settings, checked user's settings, its principal) straight to the broker and through the proxy."""
    direct_user = {"bootstrap.servers": broker.sasl_bootstrap, "security.protocol": "SASL_PLAINTEXT",
                   "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": DIRECT_USER, "sasl.password": DIRECT_PASSWORD}
    return {"broker": ({"bootstrap.servers": broker.bootstrap}, direct_user, f"User:{DIRECT_USER}"),
            "proxy": (rd(proxy, ADMIN), rd(proxy, CHECKED), f"User:{CHECKED}")}


def grant_rules(admin: dict[str, object], prefix: str, principal: str, rules: list[tuple[Any, ...]]) -> None:
    bindings = [binding(prefix + suffix, operation, principal, resource,
                        ResourcePatternType.PREFIXED if pattern == "P" else ResourcePatternType.LITERAL,
                        AclPermissionType.DENY if permission == "D" else AclPermissionType.ALLOW)
                for resource, suffix, pattern, operation, permission in rules]
    if bindings:
        grant(admin, *bindings)


RULES = {  # case -> [(resource, name suffix ("" is the case's prefix itself), pattern, operation, permission)]
    "read topic and group": [(ResourceType.TOPIC, "orders", "L", AclOperation.READ, "A"),
                             (ResourceType.GROUP, "group", "L", AclOperation.READ, "A")],
    "write only": [(ResourceType.TOPIC, "orders", "L", AclOperation.WRITE, "A")],
    "all by prefix, deny read": [(ResourceType.TOPIC, "", "P", AclOperation.ALL, "A"),
                                 (ResourceType.GROUP, "", "P", AclOperation.ALL, "A"),
                                 (ResourceType.TOPIC, "orders", "L", AclOperation.READ, "D")],
    "describe only": [(ResourceType.TOPIC, "orders", "L", AclOperation.DESCRIBE, "A")],
    "create by prefix": [(ResourceType.TOPIC, "new", "P", AclOperation.CREATE, "A")],
    "nothing": [],
}


@pytest.mark.parametrize("case", list(RULES))
def test_the_proxy_answers_as_the_brokers_authorizer_for_the_same_rules(case, acl_tenants, authorizing_kafka):
    proxy, _ = acl_tenants
    prefix = unique("cmp").replace("-", "") + "-"
    sides = both_sides(proxy, authorizing_kafka)
    outcomes = {}
    for side, (admin, user, principal) in sides.items():
        orders, other = prefix + "orders", prefix + "other"
        assert create_topic(admin, orders) == 0 and create_topic(admin, other) == 0
        assert produce_one(admin, orders) == 0
        grant_rules(admin, prefix, principal, RULES[case])
        outcomes[side] = {
            "metadata": visible(user, orders, other),
            "produce": produce_one(user, orders),
            "consume": consume_first(user, orders, prefix + "group"),
            "create": create_topic(user, prefix + "new-topic"),
        }
    assert outcomes["proxy"] == outcomes["broker"]


def test_a_java_consumer_reads_under_acls_and_a_revoked_read_stops_it(acl_tenants, tmp_path):
    """Kafka's own consumer (which opens fetch sessions, KIP-227) reads through the proxy with its sessions
    turned off; once READ is revoked, its next Fetch is refused, without a new connection."""
    proxy, _ = acl_tenants
    topic, group = unique("java-ro"), unique("java-group")
    admin = rd(proxy, ADMIN)
    assert create_topic(admin, topic) == 0
    for _ in range(5):
        assert produce_one(admin, topic) == 0
    read = binding(topic, AclOperation.READ, f"User:{CHECKED}")
    grant(admin, read, binding(group, AclOperation.READ, f"User:{CHECKED}", resource=ResourceType.GROUP))
    out = subprocess.run(
        ["java", "-Xmx256m", "-cp", kafka_classpath(KAFKA_VERSION), "org.apache.kafka.tools.consumer.ConsoleConsumer",
         "--bootstrap-server", proxy.bootstrap, "--topic", topic, "--group", group, "--from-beginning",
         "--max-messages", "5", "--timeout-ms", "60000", "--consumer.config", str(java_login(CHECKED, tmp_path))],
        capture_output=True, text=True, timeout=120)
    assert [line for line in out.stdout.splitlines() if line == "v"] == ["v"] * 5, out.stdout + out.stderr
    assert "Processed a total of 5 messages" in out.stdout + out.stderr

    second = unique("revoked")
    grant(admin, binding(second, AclOperation.READ, f"User:{CHECKED}", resource=ResourceType.GROUP))
    consumer = Consumer({**rd(proxy, CHECKED), "group.id": second, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        while (m := consumer.poll(0.5)) is None or m.error():
            assert time.monotonic() < deadline, "no message before the revoke"
        deleter = AdminClient(admin)
        for future in deleter.delete_acls([AclBindingFilter(
                ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, f"User:{CHECKED}", "*", AclOperation.READ,
                AclPermissionType.ALLOW)]).values():
            assert len(future.result(30)) == 1
        assert produce_one(admin, topic) == 0
        refused = None
        deadline = time.monotonic() + 30
        while refused is None and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is not None and m.error() is not None:  # messages fetched before the revoke may come first
                refused = m.error().code()
        assert refused == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        consumer.close()


# -- API by API, on both sides ------------------------------------------------------------------------
def _code(exc: KafkaException) -> int:
    return int(exc.args[0].code())


def _settled(futures: object) -> int:
    """0 if every future of an Admin call succeeded, else the first error code."""
    values = futures.values() if isinstance(futures, dict) else [futures]
    for future in values:
        try:
            result = future.result(30)
        except KafkaException as exc:
            return _code(exc)
        for tp in getattr(result, "topic_partitions", None) or ():  # per-partition errors, as offsets answers
            if tp.error is not None:
                return int(tp.error.code())
    return 0


def _admin_call(settings: dict[str, object], call: Callable[[AdminClient], object]) -> int:
    admin = AdminClient(settings)  # held until the futures are done: a collected client cancels them
    try:
        return _settled(call(admin))
    except KafkaException as exc:
        return _code(exc)


def _api_actions(prefix: str) -> dict[str, Callable[[dict[str, object]], object]]:
    """Named actions, in order (the destructive ones last), each answering a comparable outcome."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicCollection
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, OffsetSpec

    orders, group, tx = prefix + "orders", prefix + "group", prefix + "tx"
    topic_config = ConfigResource(ResourceType.TOPIC, orders)
    retention = ConfigResource(ResourceType.TOPIC, orders, incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])

    def listed_groups(settings: dict[str, object]) -> object:
        admin = AdminClient(settings)
        try:
            return group in {g.group_id for g in admin.list_consumer_groups().result(30).valid}
        except KafkaException as exc:
            return _code(exc)

    def transactional(settings: dict[str, object]) -> int:
        producer = Producer({**settings, "transactional.id": tx, "transaction.timeout.ms": 10000})
        try:
            producer.init_transactions(20)
            return 0
        except KafkaException as exc:
            return _code(exc)

    return {
        "describe topic": lambda s: _admin_call(s, lambda a: a.describe_topics(TopicCollection([orders]))),
        "list offsets": lambda s: _admin_call(s, lambda a: a.list_offsets({TopicPartition(orders, 0):
                                                                          OffsetSpec.latest()})),
        "describe configs": lambda s: _admin_call(s, lambda a: a.describe_configs([topic_config])),
        "alter configs": lambda s: _admin_call(s, lambda a: a.incremental_alter_configs([retention])),
        "describe group": lambda s: _admin_call(s, lambda a: a.describe_consumer_groups([group])),
        "list groups": listed_groups,
        "group offsets": lambda s: _admin_call(s, lambda a: a.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)])),
        "idempotent produce": lambda s: produce_one({**s, "enable.idempotence": True}, orders),
        "transactions": transactional,
        "create partitions": lambda s: _admin_call(s, lambda a: a.create_partitions([NewPartitions(orders, 3)])),
        "delete records": lambda s: _admin_call(s, lambda a: a.delete_records([TopicPartition(orders, 0, 1)])),
        "delete group": lambda s: _admin_call(s, lambda a: a.delete_consumer_groups([group])),
        "delete topic": lambda s: _admin_call(s, lambda a: a.delete_topics([orders])),
    }


BY_API = {  # case -> bindings as in RULES
    "nothing": [],
    "describe by prefix": [(ResourceType.TOPIC, "", "P", AclOperation.DESCRIBE, "A"),
                           (ResourceType.GROUP, "", "P", AclOperation.DESCRIBE, "A")],
    "configs and alter on the topic": [(ResourceType.TOPIC, "orders", "L", AclOperation.ALTER, "A"),
                                       (ResourceType.TOPIC, "orders", "L", AclOperation.ALTER_CONFIGS, "A")],
    "delete by prefix, describe denied on the group": [
        (ResourceType.TOPIC, "", "P", AclOperation.DELETE, "A"), (ResourceType.GROUP, "", "P", AclOperation.ALL, "A"),
        (ResourceType.GROUP, "group", "L", AclOperation.DESCRIBE, "D")],
    "transactional writer": [(ResourceType.TOPIC, "orders", "L", AclOperation.WRITE, "A"),
                             (ResourceType.TRANSACTIONAL_ID, "", "P", AclOperation.WRITE, "A")],
    "everything by prefix, read denied": [(ResourceType.TOPIC, "", "P", AclOperation.ALL, "A"),
                                          (ResourceType.GROUP, "", "P", AclOperation.ALL, "A"),
                                          (ResourceType.TRANSACTIONAL_ID, "", "P", AclOperation.ALL, "A"),
                                          (ResourceType.TOPIC, "orders", "L", AclOperation.READ, "D")],
}


@pytest.mark.parametrize("case", list(BY_API))
def test_api_by_api_the_proxy_answers_as_the_brokers_authorizer(case, acl_tenants, authorizing_kafka):
    proxy, _ = acl_tenants
    prefix = unique("api").replace("-", "") + "-"
    sides = both_sides(proxy, authorizing_kafka)
    outcomes: dict[str, dict[str, object]] = {}
    for side, (admin, user, principal) in sides.items():
        orders = prefix + "orders"
        assert create_topic(admin, orders) == 0 and produce_one(admin, orders) == 0
        committed = Consumer({**admin, "group.id": prefix + "group"})  # the group exists, with an offset
        committed.commit(offsets=[TopicPartition(orders, 0, 1)], asynchronous=False)
        committed.close()
        grant_rules(admin, prefix, principal, BY_API[case])
        outcomes[side] = {name: action(user) for name, action in _api_actions(prefix).items()}
    differing = {name: (outcomes["broker"][name], outcomes["proxy"][name]) for name in outcomes["broker"]
                 if outcomes["broker"][name] != outcomes["proxy"][name]}
    assert differing == {}, f"(broker, proxy) by action: {differing}"
