"""Guard rails at the proxy: a tenant's topic, partition and group limits, checked before the broker acts.

The requests that create or change topics (CreateTopics, CreatePartitions, DeleteTopics, AlterConfigs,
IncrementalAlterConfigs) are rare and small, so they are decoded and checked against the tenant's use,
which the proxy reads from the broker itself (Metadata, ListGroups). Refused items get POLICY_VIOLATION
with a message naming the limit, or THROTTLING_QUOTA_EXCEEDED for the topic-mutation rate (KIP-599),
and are merged into the broker's answer for the rest, so every topic gets its own result. A request
that would create a group is checked against max_groups the same way.

Checks of one tenant run one at a time, and what they allowed counts as used until the broker lists it
(or a minute passes), so two connections cannot both take the last topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tenantry.protocol.errors import ErrorCode
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.list_groups_request import ListGroupsRequest
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.protocol.scanner import Chunk
from tenantry.protocol.schema import Message
from tenantry.proxy.authorization.shapes import element_class, merge_items
from tenantry.tenants.limits import (
    Limits,
    NewTopic,
    Usage,
    Violation,
    check_new_partitions,
    check_new_topic,
    check_topic_configs,
)
from tenantry.tenants.registry import Tenant
from tenantry.tenants.token_bucket import TokenBucket

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import BrokerLink

TOPIC_APIS = frozenset({ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS, ApiKey.ALTER_CONFIGS, ApiKey.CREATE_PARTITIONS,
                        ApiKey.INCREMENTAL_ALTER_CONFIGS})
GROUP_APIS = frozenset({ApiKey.OFFSET_COMMIT, ApiKey.JOIN_GROUP, ApiKey.TXN_OFFSET_COMMIT,
                        ApiKey.CONSUMER_GROUP_HEARTBEAT})
#: First version where the topic-mutation rate refuses with THROTTLING_QUOTA_EXCEEDED (KIP-599); before
#: it, the request goes ahead and its response is delayed.
MUTATION_ERROR_FROM: dict[int, int] = {ApiKey.CREATE_TOPICS: 6, ApiKey.CREATE_PARTITIONS: 3, ApiKey.DELETE_TOPICS: 5}
#: Where each response lists its per-item results.
RESULTS: dict[int, str] = {ApiKey.CREATE_TOPICS: "topics", ApiKey.CREATE_PARTITIONS: "results",
                           ApiKey.DELETE_TOPICS: "responses", ApiKey.ALTER_CONFIGS: "responses",
                           ApiKey.INCREMENTAL_ALTER_CONFIGS: "responses", ApiKey.METADATA: "topics"}
TOPIC_RESOURCE = 2
SET, DELETE = 0, 1
RESERVED_FOR = 60.0  # seconds an allowed creation counts while the broker has not answered it
SETTLING = 2.0  # seconds after the broker's answer for its metadata to show (or drop) the topic
MUTATION_BURST_SECONDS = 10.0


@dataclass
class Verdict:
    """What to do with a checked request."""

    request: Message | None = None  # forward this (changed: refused items removed, defaults filled in)
    refused: list[Any] = field(default_factory=list)  # result elements to add to the broker's response
    answer: Message | None = None  # or answer with this and forward nothing
    throttle: float = 0.0  # seconds the topic-mutation rate adds to the response
    settle: Callable[[], None] | None = None  # call when the broker has answered the forwarded request


@dataclass
class TenantGuardState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    reserved_topics: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (partitions, until)
    known_groups: set[str] = field(default_factory=set)  # cluster ids seen listed or allowed
    mutations: TokenBucket | None = None


class Guard:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.states: dict[str, TenantGuardState] = {}

    @staticmethod
    def applies(limits: Limits, api_key: int) -> bool:
        if api_key in GROUP_APIS:
            return limits.max_groups is not None
        return api_key in TOPIC_APIS and any(k != "max_groups" for k in limits.to_dict())

    def settled(self, tenant: Tenant, api_key: int, request: Any) -> bool:
        """True when a request needs no check after all (its group is known to exist)."""
        if api_key not in GROUP_APIS:
            return False
        return not request.group_id or tenant.prefix + request.group_id in self._state(tenant).known_groups

    def _state(self, tenant: Tenant) -> TenantGuardState:
        state = self.states.setdefault(tenant.id, TenantGuardState())
        rate = tenant.limits.topic_mutations_per_sec
        if rate is None:
            state.mutations = None
        elif state.mutations is None:
            state.mutations = TokenBucket(rate, rate * MUTATION_BURST_SECONDS, self.clock())
        elif state.mutations.rate != rate:
            state.mutations.retune(rate, rate * MUTATION_BURST_SECONDS, self.clock())
        return state

    async def review(self, tenant: Tenant, produce_rate: float | None, upstream: BrokerLink, api_key: int,
                     version: int, request: Any) -> Verdict:
        """Check `request` (tenant names) against the tenant's limits and its use on the cluster."""
        state = self._state(tenant)
        async with state.lock:
            if api_key in GROUP_APIS:
                return await self._review_group(tenant, state, upstream, api_key, version, request)
            usage = await self._usage(tenant, state, upstream)
            return self._review_topics(tenant.limits, state, usage, produce_rate, api_key, version, request)

    # -- use on the cluster -----------------------------------------------------------------------------
    async def _usage(self, tenant: Tenant, state: TenantGuardState, upstream: BrokerLink) -> Usage:
        version = min(12, upstream.table[ApiKey.METADATA].hi or 12)
        metadata = await upstream.request(MetadataRequest(topics=None, allow_auto_topic_creation=False), version)
        usage = Usage({t.name[len(tenant.prefix):]: len(t.partitions) for t in metadata.topics
                       if t.name and t.name.startswith(tenant.prefix) and t.error_code == 0})
        now = self.clock()
        for name, (partitions, until) in list(state.reserved_topics.items()):
            if name in usage.topics or until < now:
                del state.reserved_topics[name]
            else:
                usage.topics[name] = partitions
        return usage

    async def _review_group(self, tenant: Tenant, state: TenantGuardState, upstream: BrokerLink,
                            api_key: int, version: int, request: Any) -> Verdict:
        version_ = min(5, upstream.table[ApiKey.LIST_GROUPS].hi or 5)
        listed = await upstream.request(ListGroupsRequest(), version_)
        mine = {g.group_id for g in listed.groups if g.group_id.startswith(tenant.prefix)}
        state.known_groups = mine | {g for g in state.known_groups if g in mine}
        group = tenant.prefix + request.group_id
        limit = tenant.limits.max_groups
        if group in mine or limit is None or len(mine) < limit:
            state.known_groups.add(group)
            return Verdict(request=request)
        message = f"group limit reached: max_groups is {limit} and the tenant has {len(mine)} groups"
        return Verdict(answer=group_refusal(api_key, version, request, message))

    # -- topics -----------------------------------------------------------------------------------------
    def _review_topics(self, limits: Limits, state: TenantGuardState, usage: Usage, produce_rate: float | None,
                       api_key: int, version: int, request: Any) -> Verdict:
        now = self.clock()
        bucket = state.mutations if api_key in MUTATION_ERROR_FROM else None
        if bucket is not None and not bucket.has_tokens(now) and version >= MUTATION_ERROR_FROM[api_key]:
            delay = bucket.delay(now)
            message = (f"topic mutation rate: topic_mutations_per_sec is {limits.topic_mutations_per_sec}; "
                       f"retry in {delay:.1f} s")
            throttled = [_result(api_key, name, ErrorCode.THROTTLING_QUOTA_EXCEEDED, message)
                         for name in _item_names(api_key, version, request)]
            return Verdict(answer=_response(api_key, throttled, delay), throttle=delay)
        refused: list[Any] = []
        mutated = 0
        if api_key == ApiKey.CREATE_TOPICS:
            mutated = self._create_topics(limits, state, usage, produce_rate, request, refused)
        elif api_key == ApiKey.CREATE_PARTITIONS:
            mutated = _create_partitions(limits, usage, request, refused)
        elif api_key == ApiKey.DELETE_TOPICS:
            names = _item_names(api_key, version, request)
            mutated = sum(usage.topics.get(name, 1) for name in names)
            for name in names:
                state.reserved_topics.pop(name, None)
        else:
            _alter_configs(limits, usage, produce_rate, api_key, request, refused)
        throttle = bucket.record(mutated, now) if bucket is not None and mutated else 0.0
        if not _remaining_items(api_key, request):
            return Verdict(answer=_response(api_key, refused, throttle), throttle=throttle)
        settle = None
        if api_key == ApiKey.CREATE_TOPICS:
            names = [t.name for t in request.topics]

            def settle() -> None:
                until = self.clock() + SETTLING
                for name in names:
                    if name in state.reserved_topics:
                        state.reserved_topics[name] = (state.reserved_topics[name][0], until)
        return Verdict(request=request, refused=refused, throttle=throttle, settle=settle)

    def _create_topics(self, limits: Limits, state: TenantGuardState, usage: Usage, produce_rate: float | None,
                       request: Any, refused: list[Any]) -> int:
        kept, partitions_added = [], 0
        for t in request.topics:
            topic = NewTopic(t.name, t.num_partitions, t.replication_factor, {c.name: c.value for c in t.configs},
                             bool(t.assignments))
            try:
                check_new_topic(limits, usage, topic, produce_rate)
            except Violation as exc:
                refused.append(_result(ApiKey.CREATE_TOPICS, t.name, ErrorCode.POLICY_VIOLATION, str(exc)))
                continue
            t.num_partitions, t.replication_factor = topic.partitions, topic.replication_factor
            config = element_class(type(t), "configs")
            t.configs = [config(name=k, value=v) for k, v in topic.configs.items()]
            kept.append(t)
            partitions_added += max(topic.partitions, 1)
            if not request.validate_only:
                state.reserved_topics[t.name] = (max(topic.partitions, 1), self.clock() + RESERVED_FOR)
        request.topics = kept
        return partitions_added


def _create_partitions(limits: Limits, usage: Usage, request: Any, refused: list[Any]) -> int:
    kept, added = [], 0
    for t in request.topics:
        current = usage.topics.get(t.name)
        if current is not None:  # an unknown topic is the broker's to refuse
            try:
                check_new_partitions(limits, usage, t.name, t.count)
            except Violation as exc:
                refused.append(_result(ApiKey.CREATE_PARTITIONS, t.name, ErrorCode.POLICY_VIOLATION, str(exc)))
                continue
            added += max(0, t.count - current)
        kept.append(t)
    request.topics = kept
    return added


def _alter_configs(limits: Limits, usage: Usage, produce_rate: float | None, api_key: int, request: Any,
                   refused: list[Any]) -> None:
    kept = []
    for r in request.resources:
        if r.resource_type == TOPIC_RESOURCE:
            incremental = api_key == ApiKey.INCREMENTAL_ALTER_CONFIGS
            configs = {c.name: (None if incremental and c.config_operation == DELETE else c.value) for c in r.configs}
            try:
                check_topic_configs(limits, configs, usage.topics.get(r.resource_name, 1),
                                    limits.replication_factor or 1, produce_rate, partial=incremental)
            except Violation as exc:
                refused.append(_result(api_key, r.resource_name, ErrorCode.POLICY_VIOLATION, str(exc)))
                continue
        kept.append(r)
    request.resources = kept


def _item_names(api_key: int, version: int, request: Any) -> list[str]:
    if api_key == ApiKey.DELETE_TOPICS:
        return [t.name or "" for t in request.topics] if version >= 6 else list(request.topic_names)
    return [t.name for t in request.topics]


def _remaining_items(api_key: int, request: Any) -> bool:
    if api_key in (ApiKey.ALTER_CONFIGS, ApiKey.INCREMENTAL_ALTER_CONFIGS):
        return bool(request.resources)
    return api_key == ApiKey.DELETE_TOPICS or bool(request.topics)  # deletes are only ever refused whole


def _result(api_key: int, name: str, error: int, message: str) -> Any:
    element = element_class(RESPONSES[api_key], RESULTS[api_key])
    if api_key in (ApiKey.ALTER_CONFIGS, ApiKey.INCREMENTAL_ALTER_CONFIGS):
        return element(error_code=error, error_message=message, resource_type=TOPIC_RESOURCE, resource_name=name)
    if api_key == ApiKey.CREATE_TOPICS:
        return element(name=name, error_code=error, error_message=message, num_partitions=-1, replication_factor=-1)
    return element(name=name, error_code=error, error_message=message)


def _response(api_key: int, results: list[Any], throttle: float) -> Message:
    response: Message = RESPONSES[api_key](**{RESULTS[api_key]: results})
    response.throttle_time_ms = round(throttle * 1000)  # type: ignore[attr-defined]
    return response


def merge_refused(api_key: int, version: int, body: list[Chunk], body_offset: int,
                  refused: Sequence[Any]) -> list[Chunk]:
    """The broker's (already rewritten) response with the refused items' results added."""
    return merge_items(api_key, version, body, body_offset, RESULTS[api_key], refused)


def group_refusal(api_key: int, version: int, request: Any, message: str) -> Message:
    """POLICY_VIOLATION in the shape of each API that can create a group."""
    cls: Any = RESPONSES[api_key]
    error = ErrorCode.POLICY_VIOLATION
    refusal: Message
    if api_key == ApiKey.JOIN_GROUP:
        refusal = cls(error_code=error, generation_id=-1, member_id=request.member_id or "",
                      protocol_name=None if version >= 7 else "")
        return refusal
    if api_key == ApiKey.CONSUMER_GROUP_HEARTBEAT:
        refusal = cls(error_code=error, error_message=message, member_epoch=-1)
        return refusal
    topic_cls = element_class(cls, "topics")
    partition_cls = element_class(topic_cls, "partitions")
    topics = []
    for t in request.topics:
        partitions = [partition_cls(partition_index=p.partition_index, error_code=error) for p in t.partitions]
        topic = topic_cls(partitions=partitions)
        for name in ("name", "topic_id"):
            if hasattr(t, name):
                setattr(topic, name, getattr(t, name))
        topics.append(topic)
    refusal = cls(topics=topics)
    return refusal
