"""Rules for the APIs that act on topics and on the cluster (KafkaApis' checks, per API)."""

from __future__ import annotations

from typing import Any

from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.create_topics_request import CreateTopicsRequest
from tenantry.protocol.messages.delete_topics_request import DeleteTopicsRequest
from tenantry.protocol.messages.describe_cluster_request import DescribeClusterRequest
from tenantry.protocol.messages.describe_topic_partitions_request import DescribeTopicPartitionsRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.protocol.messages.produce_request import ProduceRequest
from tenantry.protocol.schema import ZERO_UUID
from tenantry.proxy.authorization.check import Check
from tenantry.proxy.authorization.rules import (
    CLUSTER,
    GROUP,
    TOPIC,
    TXN,
    NameOf,
    Verdict,
    every_item_refused,
    per_topic,
    refuse_items,
    rule,
    whole,
)
from tenantry.proxy.authorization.shapes import element_class, items_response, refused_item
from tenantry.tenants.acls import CLUSTER_NAME, Operation, ResourceType, authorized_operations

TOPIC_CONFIG, BROKER_CONFIG, BROKER_LOGGER_CONFIG, GROUP_CONFIG = 2, 4, 8, 32
#: Config resource type -> the ACL resource it is checked on, and the error a refusal gets.
CONFIG_RESOURCES: dict[int, tuple[ResourceType, int]] = {
    TOPIC_CONFIG: (TOPIC, ErrorCode.TOPIC_AUTHORIZATION_FAILED),
    BROKER_CONFIG: (CLUSTER, ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
    BROKER_LOGGER_CONFIG: (CLUSTER, ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
    GROUP_CONFIG: (GROUP, ErrorCode.GROUP_AUTHORIZATION_FAILED),
}
NOT_REQUESTED = -2147483648  # authorized_operations when the client did not ask for them


@rule(ApiKey.PRODUCE)
def produce(m: ProduceRequest, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if m.transactional_id is not None and not check(Operation.WRITE, TXN, m.transactional_id):
        return every_item_refused(ApiKey.PRODUCE, m, "topic_data", "responses",
                                  ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    return per_topic(ApiKey.PRODUCE, m, check, name_of, Operation.WRITE, "topic_data", "responses")


@rule(ApiKey.FETCH)
def fetch(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return per_topic(ApiKey.FETCH, m, check, name_of, Operation.READ, "topics", "responses")


@rule(ApiKey.LIST_OFFSETS, ApiKey.OFFSET_FOR_LEADER_EPOCH)
def describe_partitions(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return per_topic(m.API_KEY, m, check, name_of, Operation.DESCRIBE, "topics", "topics")


@rule(ApiKey.DELETE_RECORDS)
def delete_records(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return per_topic(ApiKey.DELETE_RECORDS, m, check, name_of, Operation.DELETE, "topics", "topics")


@rule(ApiKey.DESCRIBE_PRODUCERS)
def describe_producers(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return per_topic(ApiKey.DESCRIBE_PRODUCERS, m, check, name_of, Operation.READ, "topics", "topics")


@rule(ApiKey.CREATE_TOPICS)
def create_topics(m: CreateTopicsRequest, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    on_cluster = check.quietly(Operation.CREATE, CLUSTER, CLUSTER_NAME)
    verdict = refuse_items(ApiKey.CREATE_TOPICS, m, "topics", "topics", ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                           lambda t: not on_cluster and not check(Operation.CREATE, TOPIC, t.name))
    verdict = verdict or Verdict()

    def hide_configs(response: Any, version: int) -> None:
        # A topic's configs are shown only to those who may DESCRIBE_CONFIGS it, as a broker does.
        for t in response.topics:
            if t.error_code == 0 and not check.quietly(Operation.DESCRIBE_CONFIGS, TOPIC, t.name):
                t.configs = []
                t.topic_config_error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED
    if verdict.answer is None:
        verdict.response_filter = hide_configs
    return verdict


@rule(ApiKey.DELETE_TOPICS)
def delete_topics(m: DeleteTopicsRequest, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    items = "topics" if version >= 6 else "topic_names"
    return per_topic(ApiKey.DELETE_TOPICS, m, check, name_of, Operation.DELETE, items, "responses")


@rule(ApiKey.CREATE_PARTITIONS)
def create_partitions(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return per_topic(ApiKey.CREATE_PARTITIONS, m, check, name_of, Operation.ALTER, "topics", "results")


@rule(ApiKey.DESCRIBE_CONFIGS)
def describe_configs(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return _per_config_resource(ApiKey.DESCRIBE_CONFIGS, m, check, Operation.DESCRIBE_CONFIGS, "results")


@rule(ApiKey.ALTER_CONFIGS, ApiKey.INCREMENTAL_ALTER_CONFIGS)
def alter_configs(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return _per_config_resource(m.API_KEY, m, check, Operation.ALTER_CONFIGS, "responses")


def _per_config_resource(api_key: int, m: Any, check: Check, operation: Operation, field: str) -> Verdict | None:
    """Each resource checked on its own ACL resource, refused with that resource's error, in one pass."""
    cls = element_class(RESPONSES[api_key], field)
    kept, refused = [], []
    for r in m.resources:
        resource_type, error = CONFIG_RESOURCES.get(r.resource_type, (None, 0))
        name = CLUSTER_NAME if resource_type == CLUSTER else r.resource_name
        if resource_type is None or check(operation, resource_type, name):
            kept.append(r)
        else:
            refused.append(refused_item(cls, r, error))
    m.resources = kept
    if not refused:
        return None
    if not m.resources:
        return Verdict(answer=items_response(api_key, field, refused))
    return Verdict(request=m, into=field, refused=refused)


@rule(ApiKey.METADATA)
def metadata(m: MetadataRequest, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    listing = m.topics is None
    verdict = None
    if not listing:
        verdict = per_topic(ApiKey.METADATA, m, check, name_of, Operation.DESCRIBE, "topics", "topics",
                            forward_empty=True)
        if m.allow_auto_topic_creation and not check.quietly(Operation.CREATE, CLUSTER, CLUSTER_NAME) and any(
                t.name and not check.quietly(Operation.CREATE, TOPIC, t.name) for t in m.topics or ()):
            m.allow_auto_topic_creation = False  # a broker creates only the topics the user may CREATE
            verdict = verdict or Verdict(request=m)
    verdict = verdict or Verdict()
    topic_ops, cluster_ops = m.include_topic_authorized_operations, m.include_cluster_authorized_operations

    def describable_only(response: Any, version: int) -> None:
        kept = []
        for t in response.topics:
            if t.name and not check.quietly(Operation.DESCRIBE, TOPIC, t.name):
                if listing:
                    continue
                t.error_code, t.partitions, t.topic_id = ErrorCode.TOPIC_AUTHORIZATION_FAILED, [], ZERO_UUID
            elif topic_ops and t.name and t.error_code == 0:
                t.topic_authorized_operations = authorized_operations(check.acls, check.user, check.host, TOPIC,
                                                                      t.name)
            kept.append(t)
        response.topics = kept
        if cluster_ops:
            response.cluster_authorized_operations = _cluster_operations(check)
    verdict.response_filter = describable_only
    return verdict


@rule(ApiKey.DESCRIBE_TOPIC_PARTITIONS)
def describe_topic_partitions(m: DescribeTopicPartitionsRequest, version: int, check: Check,
                              name_of: NameOf) -> Verdict | None:
    verdict = per_topic(ApiKey.DESCRIBE_TOPIC_PARTITIONS, m, check, name_of, Operation.DESCRIBE, "topics", "topics",
                        forward_empty=False) or Verdict()

    def describable_only(response: Any, version: int) -> None:  # a listing (no topics named) is filtered
        response.topics = [t for t in response.topics if t.error_code != 0
                           or check.quietly(Operation.DESCRIBE, TOPIC, t.name)]
    if verdict.answer is None:
        verdict.response_filter = describable_only
    return verdict


@rule(ApiKey.DESCRIBE_CLUSTER)
def describe_cluster(m: DescribeClusterRequest, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if not m.include_cluster_authorized_operations:
        return None

    def operations(response: Any, version: int) -> None:
        response.cluster_authorized_operations = _cluster_operations(check)
    return Verdict(response_filter=operations)


def _cluster_operations(check: Check) -> int:
    return authorized_operations(check.acls, check.user, check.host, CLUSTER, CLUSTER_NAME)


@rule(ApiKey.DESCRIBE_CLIENT_QUOTAS, ApiKey.LIST_CONFIG_RESOURCES)
def cluster_configs(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if check(Operation.DESCRIBE_CONFIGS, CLUSTER, CLUSTER_NAME):
        return None
    return whole(m.API_KEY, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
