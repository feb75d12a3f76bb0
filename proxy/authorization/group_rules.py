"""Rules for consumer groups and transactions (KafkaApis' checks, per API)."""

from __future__ import annotations

from typing import Any

from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.find_coordinator_request import FindCoordinatorRequest
from tenantry.proxy.authorization.check import Check
from tenantry.proxy.authorization.rules import (
    CLUSTER,
    GROUP,
    TOPIC,
    TXN,
    NameOf,
    Verdict,
    every_item_refused,
    per_name,
    per_topic,
    refuse_items,
    rule,
    topic_name,
    whole,
)
from tenantry.tenants.acls import CLUSTER_NAME, Operation, authorized_operations

GROUP_DENIED, TOPIC_DENIED, TXN_DENIED = (ErrorCode.GROUP_AUTHORIZATION_FAILED, ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                          ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
GROUP_KEY, TRANSACTION_KEY = 0, 1


# -- group membership ---------------------------------------------------------------------------------
@rule(ApiKey.JOIN_GROUP)
def join_group(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if check(Operation.READ, GROUP, m.group_id):
        return None
    return whole(ApiKey.JOIN_GROUP, GROUP_DENIED, member_id=m.member_id or "",
                 protocol_name=None if version >= 7 else "")


@rule(ApiKey.SYNC_GROUP, ApiKey.HEARTBEAT, ApiKey.LEAVE_GROUP)
def group_member(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return None if check(Operation.READ, GROUP, m.group_id) else whole(m.API_KEY, GROUP_DENIED)


@rule(ApiKey.CONSUMER_GROUP_HEARTBEAT)
def consumer_group_heartbeat(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if not check(Operation.READ, GROUP, m.group_id):
        return whole(ApiKey.CONSUMER_GROUP_HEARTBEAT, GROUP_DENIED)
    hidden = [t for t in m.subscribed_topic_names or () if not check(Operation.DESCRIBE, TOPIC, t)]
    if hidden:  # as a broker answers a subscription to topics the member may not DESCRIBE
        return whole(ApiKey.CONSUMER_GROUP_HEARTBEAT, TOPIC_DENIED,
                     f"The member is not authorized to access topics: {', '.join(sorted(hidden))}")
    return None


@rule(ApiKey.FIND_COORDINATOR)
def find_coordinator(m: FindCoordinatorRequest, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    resource, error = (GROUP, GROUP_DENIED) if m.key_type == GROUP_KEY else (TXN, TXN_DENIED)
    if m.key_type not in (GROUP_KEY, TRANSACTION_KEY):
        return None  # the tenant rewrite refuses other key types
    if version <= 3:
        return None if check(Operation.DESCRIBE, resource, m.key) else whole(
            ApiKey.FIND_COORDINATOR, error, host="")
    return refuse_items(ApiKey.FIND_COORDINATOR, m, "coordinator_keys", "coordinators", error,
                        lambda key: not check(Operation.DESCRIBE, resource, key))


# -- offsets ------------------------------------------------------------------------------------------
@rule(ApiKey.OFFSET_COMMIT)
def offset_commit(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if not check(Operation.READ, GROUP, m.group_id):
        return every_item_refused(ApiKey.OFFSET_COMMIT, m, "topics", "topics", GROUP_DENIED)
    return per_topic(ApiKey.OFFSET_COMMIT, m, check, name_of, Operation.READ, "topics", "topics")


@rule(ApiKey.TXN_OFFSET_COMMIT)
def txn_offset_commit(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if not check(Operation.WRITE, TXN, m.transactional_id):
        return every_item_refused(ApiKey.TXN_OFFSET_COMMIT, m, "topics", "topics", TXN_DENIED)
    if not check(Operation.READ, GROUP, m.group_id):
        return every_item_refused(ApiKey.TXN_OFFSET_COMMIT, m, "topics", "topics", GROUP_DENIED)
    return per_topic(ApiKey.TXN_OFFSET_COMMIT, m, check, name_of, Operation.READ, "topics", "topics")


@rule(ApiKey.OFFSET_DELETE)
def offset_delete(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if not check(Operation.DELETE, GROUP, m.group_id):
        return whole(ApiKey.OFFSET_DELETE, GROUP_DENIED)
    return per_topic(ApiKey.OFFSET_DELETE, m, check, name_of, Operation.READ, "topics", "topics")


@rule(ApiKey.OFFSET_FETCH)
def offset_fetch(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    """Offsets are read-only: the broker answers, and what the user may not see is replaced by errors."""
    if version < 8:
        if not check(Operation.DESCRIBE, GROUP, m.group_id):
            if version >= 2:
                return whole(ApiKey.OFFSET_FETCH, GROUP_DENIED)
            return every_item_refused(ApiKey.OFFSET_FETCH, m, "topics", "topics", GROUP_DENIED)
        everything = {m.group_id: m.topics is None}
    else:
        everything = {g.group_id: g.topics is None for g in m.groups}

    def visible_only(response: Any, version: int) -> None:
        if version < 8:
            response.topics = _visible_topics(check, response.topics, everything[m.group_id], name_of)
            return
        for g in response.groups:
            if not check(Operation.DESCRIBE, GROUP, g.group_id):
                g.error_code, g.topics = GROUP_DENIED, []
            else:
                g.topics = _visible_topics(check, g.topics, everything.get(g.group_id, False), name_of)
    return Verdict(response_filter=visible_only)


def _visible_topics(check: Check, topics: list[Any], listing: bool, name_of: NameOf) -> list[Any]:
    kept = []
    for t in topics:
        name = topic_name(t, name_of)
        if name is not None and not check.quietly(Operation.DESCRIBE, TOPIC, name):
            if listing:
                continue
            for p in t.partitions:
                p.error_code, p.committed_offset, p.metadata = TOPIC_DENIED, -1, None
        kept.append(t)
    return kept


# -- group administration -----------------------------------------------------------------------------
@rule(ApiKey.DESCRIBE_GROUPS)
def describe_groups(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return _described_groups(ApiKey.DESCRIBE_GROUPS, m, check, "groups", m.include_authorized_operations)


@rule(ApiKey.CONSUMER_GROUP_DESCRIBE)
def consumer_group_describe(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return _described_groups(ApiKey.CONSUMER_GROUP_DESCRIBE, m, check, "group_ids", m.include_authorized_operations)


def _described_groups(api_key: int, m: Any, check: Check, items: str, operations: bool) -> Verdict | None:
    verdict = per_name(api_key, m, check, Operation.DESCRIBE, GROUP, items, "groups", GROUP_DENIED)
    if not operations or (verdict is not None and verdict.answer is not None):
        return verdict
    verdict = verdict or Verdict()

    def with_operations(response: Any, version: int) -> None:
        for g in response.groups:
            if g.error_code == 0:
                g.authorized_operations = authorized_operations(check.acls, check.user, check.host, GROUP, g.group_id)
    verdict.response_filter = with_operations
    return verdict


@rule(ApiKey.LIST_GROUPS)
def list_groups(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if check.quietly(Operation.DESCRIBE, CLUSTER, CLUSTER_NAME):
        return None

    def describable_only(response: Any, version: int) -> None:
        response.groups = [g for g in response.groups if check.quietly(Operation.DESCRIBE, GROUP, g.group_id)]
    return Verdict(response_filter=describable_only)


@rule(ApiKey.DELETE_GROUPS)
def delete_groups(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return per_name(ApiKey.DELETE_GROUPS, m, check, Operation.DELETE, GROUP, "groups_names", "results", GROUP_DENIED)


# -- transactions -------------------------------------------------------------------------------------
@rule(ApiKey.INIT_PRODUCER_ID)
def init_producer_id(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if m.transactional_id is not None:
        return None if check(Operation.WRITE, TXN, m.transactional_id) else whole(ApiKey.INIT_PRODUCER_ID, TXN_DENIED)
    # An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic (KIP-679).
    if check.quietly(Operation.IDEMPOTENT_WRITE, CLUSTER, CLUSTER_NAME) or check.any_of_type(Operation.WRITE, TOPIC):
        return None
    check.denied.append((Operation.IDEMPOTENT_WRITE, CLUSTER, CLUSTER_NAME))
    return whole(ApiKey.INIT_PRODUCER_ID, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)


@rule(ApiKey.ADD_PARTITIONS_TO_TXN)
def add_partitions_to_txn(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if version >= 4:  # the brokers' batched form: never a client's
        check.denied.append((Operation.CLUSTER_ACTION, CLUSTER, CLUSTER_NAME))
        return whole(ApiKey.ADD_PARTITIONS_TO_TXN, ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    items, field = "v3_and_below_topics", "results_by_topic_v3_and_below"
    if not check(Operation.WRITE, TXN, m.v3_and_below_transactional_id):
        return every_item_refused(ApiKey.ADD_PARTITIONS_TO_TXN, m, items, field, TXN_DENIED)
    denied = {t.name for t in getattr(m, items) if not check(Operation.WRITE, TOPIC, t.name)}
    if not denied:
        return None
    # As a broker does: nothing is added, the refused topics say why and the rest were not attempted.
    verdict = every_item_refused(ApiKey.ADD_PARTITIONS_TO_TXN, m, items, field, ErrorCode.OPERATION_NOT_ATTEMPTED)
    assert verdict.answer is not None
    for t in getattr(verdict.answer, field):
        if t.name in denied:
            for p in t.results_by_partition:
                p.partition_error_code = TOPIC_DENIED
    return verdict


@rule(ApiKey.ADD_OFFSETS_TO_TXN)
def add_offsets_to_txn(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    if not check(Operation.WRITE, TXN, m.transactional_id):
        return whole(ApiKey.ADD_OFFSETS_TO_TXN, TXN_DENIED)
    return None if check(Operation.READ, GROUP, m.group_id) else whole(ApiKey.ADD_OFFSETS_TO_TXN, GROUP_DENIED)


@rule(ApiKey.END_TXN)
def end_txn(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return None if check(Operation.WRITE, TXN, m.transactional_id) else whole(ApiKey.END_TXN, TXN_DENIED)


@rule(ApiKey.DESCRIBE_TRANSACTIONS)
def describe_transactions(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    return per_name(ApiKey.DESCRIBE_TRANSACTIONS, m, check, Operation.DESCRIBE, TXN, "transactional_ids",
                    "transaction_states", TXN_DENIED)


@rule(ApiKey.LIST_TRANSACTIONS)
def list_transactions(m: Any, version: int, check: Check, name_of: NameOf) -> Verdict | None:
    def describable_only(response: Any, version: int) -> None:
        response.transaction_states = [t for t in response.transaction_states
                                       if check.quietly(Operation.DESCRIBE, TXN, t.transactional_id)]
    return Verdict(response_filter=describable_only)
