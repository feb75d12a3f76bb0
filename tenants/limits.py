"""Guard rails: what a tenant may create, and the topic settings it may choose (Heroku's lesson:
"customers don't make mistakes, we make bad tools").

Every check is a pure function of the limits, the tenant's current use and the request. A refusal is a
:class:`Violation` whose message names the limit, its value and the tenant's use, so the client's error
says what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

#: Kafka's own default retention (log.retention.hours=168): what a topic gets when it sets none.
BROKER_DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000
POLICY_VIOLATION = 44


class LimitError(ValueError):
    """A guard-rail setting in the config is invalid; the message names it."""


class Violation(Exception):
    """A request breaks a guard rail; `str()` is the message the client gets with POLICY_VIOLATION."""


@dataclass(frozen=True)
class Limits:
    max_topics: int | None = None
    max_partitions: int | None = None  # summed over the tenant's topics
    max_groups: int | None = None
    default_partitions: int | None = None  # for a create that asks for the broker's default (-1)
    max_partitions_per_topic: int | None = None
    replication_factor: int | None = None  # the operator's; None leaves the tenant's choice alone
    min_insync_replicas: int | None = None  # the operator's; tenants may not choose another
    min_retention_ms: int | None = None
    max_retention_ms: int | None = None
    default_retention_ms: int | None = None  # set on topics created without retention.ms
    cleanup_policies: tuple[str, ...] | None = None
    max_storage_bytes: int | None = None  # produce quota x retention x replication, per topic
    topic_mutations_per_sec: float | None = None  # partitions created or deleted (KIP-599)

    @classmethod
    def from_dict(cls, where: str, data: dict[str, Any]) -> Limits:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise LimitError(f"{where}: unknown limit {key!r} (known: {', '.join(sorted(known))})")
            if key == "cleanup_policies":
                if not isinstance(value, list) or not value or any(p not in ("delete", "compact") for p in value):
                    raise LimitError(f"{where}: cleanup_policies must list \"delete\" and/or \"compact\"")
                values[key] = tuple(value)
            elif key == "topic_mutations_per_sec":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise LimitError(f"{where}: {key} must be a positive number, not {value!r}")
                values[key] = float(value)
            else:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise LimitError(f"{where}: {key} must be a whole number of at least 1, not {value!r}")
                values[key] = value
        limits = cls(**values)
        low, high = limits.min_retention_ms, limits.max_retention_ms
        if low is not None and high is not None and low > high:
            raise LimitError(f"{where}: min_retention_ms {low} is above max_retention_ms {high}")
        return limits

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass
class Usage:
    """What the tenant has on the cluster now: its topics and their partition counts."""

    topics: dict[str, int] = field(default_factory=dict)

    @property
    def partitions(self) -> int:
        return sum(self.topics.values())


@dataclass
class NewTopic:
    """A create request's topic as the checks see it (and fix it: defaults filled in)."""

    name: str
    partitions: int  # -1: the broker's default
    replication_factor: int  # -1: the broker's default
    configs: dict[str, str | None]
    assigned: bool = False  # the request places replicas itself


def check_new_topic(limits: Limits, usage: Usage, topic: NewTopic, produce_rate: float | None) -> None:
    """Refuse `topic` (Violation) or fill in the operator's settings; counts it into `usage` if allowed."""
    if topic.assigned:
        raise Violation("replica assignments are made by the operator, not by tenants; "
                        "ask for a number of partitions instead")
    if limits.max_topics is not None and len(usage.topics) >= limits.max_topics:
        raise Violation(f"topic limit reached: max_topics is {limits.max_topics} and the tenant has "
                        f"{len(usage.topics)} topics")
    if topic.partitions == -1 and limits.default_partitions is not None:
        topic.partitions = limits.default_partitions
    partitions = topic.partitions if topic.partitions > 0 else 1
    _check_partitions_per_topic(limits, topic.name, partitions)
    _check_total_partitions(limits, usage, partitions)
    rf = limits.replication_factor
    if rf is not None:
        if topic.replication_factor not in (-1, rf):
            raise Violation(f"the replication factor is set by the operator to {rf}; ask for -1 or {rf}, "
                            f"not {topic.replication_factor}")
        topic.replication_factor = rf
    if limits.min_insync_replicas is not None:
        topic.configs.setdefault("min.insync.replicas", str(limits.min_insync_replicas))
    if limits.default_retention_ms is not None:
        topic.configs.setdefault("retention.ms", str(limits.default_retention_ms))
    check_topic_configs(limits, topic.configs, partitions, max(topic.replication_factor, 1), produce_rate)
    usage.topics[topic.name] = partitions


def check_new_partitions(limits: Limits, usage: Usage, name: str, new_total: int) -> None:
    """Refuse growing topic `name` to `new_total` partitions if a limit forbids it; else count it."""
    current = usage.topics.get(name, 0)
    _check_partitions_per_topic(limits, name, new_total)
    _check_total_partitions(limits, usage, max(0, new_total - current))
    if name in usage.topics:
        usage.topics[name] = new_total


def _check_partitions_per_topic(limits: Limits, name: str, partitions: int) -> None:
    cap = limits.max_partitions_per_topic
    if cap is not None and partitions > cap:
        raise Violation(f"partition limit per topic: max_partitions_per_topic is {cap}, "
                        f"and {name} would have {partitions}")


def _check_total_partitions(limits: Limits, usage: Usage, more: int) -> None:
    cap = limits.max_partitions
    if cap is not None and usage.partitions + more > cap:
        raise Violation(f"partition limit reached: max_partitions is {cap}, the tenant has {usage.partitions} "
                        f"and this would add {more}")


def check_topic_configs(limits: Limits, configs: dict[str, str | None], partitions: int, replication: int,
                        produce_rate: float | None, partial: bool = False) -> None:
    """Refuse topic settings outside the limits.

    `configs` is the topic's whole config as it would be (a key missing or None is the broker's
    default), or with `partial` only the keys being changed (IncrementalAlterConfigs): then keys not
    named are left as they are and not checked.
    """
    if partial:
        if not ({"retention.ms", "retention.bytes"} & configs.keys()):
            limits = _without_storage(limits)
        if "retention.ms" not in configs:
            limits = _without_retention(limits)
    retention = _int_config(configs, "retention.ms", BROKER_DEFAULT_RETENTION_MS)
    low, high = limits.min_retention_ms, limits.max_retention_ms
    if high is not None and (retention < 0 or retention > high):
        shown = "infinite (-1)" if retention < 0 else str(retention)
        raise Violation(f"retention.ms {shown} is above the maximum, max_retention_ms {high}")
    if low is not None and 0 <= retention < low:
        raise Violation(f"retention.ms {retention} is below the minimum, min_retention_ms {low}")
    if limits.cleanup_policies is not None:
        policy = configs.get("cleanup.policy") or "delete"
        for part in (p.strip() for p in policy.split(",")):
            if part not in limits.cleanup_policies:
                allowed = ", ".join(limits.cleanup_policies)
                raise Violation(f"cleanup.policy {part!r} is not allowed; allowed: {allowed}")
    if limits.min_insync_replicas is not None:
        chosen = configs.get("min.insync.replicas")
        if chosen is not None and chosen != str(limits.min_insync_replicas):
            raise Violation(f"min.insync.replicas is set by the operator to {limits.min_insync_replicas}, "
                            f"not {chosen}")
    if limits.replication_factor is not None:
        for key in ("follower.replication.throttled.replicas", "leader.replication.throttled.replicas"):
            if configs.get(key):
                raise Violation(f"{key} is for operators only")
    _check_storage(limits, configs, retention, partitions, replication, produce_rate)


def _check_storage(limits: Limits, configs: dict[str, str | None], retention_ms: int, partitions: int,
                   replication: int, produce_rate: float | None) -> None:
    cap = limits.max_storage_bytes
    if cap is None:
        return
    bounds = []
    if produce_rate is not None and retention_ms >= 0:
        bounds.append(produce_rate * retention_ms / 1000 * replication)
    retention_bytes = _int_config(configs, "retention.bytes", -1)
    if retention_bytes >= 0:
        bounds.append(retention_bytes * partitions * replication)
    if not bounds:
        raise Violation(f"max_storage_bytes is {cap}: a topic needs a finite retention.ms (with a produce quota) "
                        "or a retention.bytes so its size is bounded")
    worst = min(bounds)
    if worst > cap:
        raise Violation(f"storage limit: max_storage_bytes is {cap}, and this topic could hold {int(worst)} bytes "
                        "(produce quota x retention x replication, or retention.bytes x partitions x replication)")


def _without_storage(limits: Limits) -> Limits:
    return replace(limits, max_storage_bytes=None)


def _without_retention(limits: Limits) -> Limits:
    return replace(limits, min_retention_ms=None, max_retention_ms=None)


def _int_config(configs: dict[str, str | None], key: str, default: int) -> int:
    value = configs.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise Violation(f"{key} must be a whole number, not {value!r}") from None
