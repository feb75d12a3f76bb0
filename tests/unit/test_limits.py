"""Guard rails as pure checks: each limit refuses with a message naming it, its value and the use."""

import re

import pytest

from tenantry.tenants.limits import (
    LimitError,
    Limits,
    NewTopic,
    Usage,
    Violation,
    check_new_partitions,
    check_new_topic,
    check_topic_configs,
)
from tenantry.tenants.registry import Registry, RegistryError

DAY = 86_400_000


def topic(name="t", partitions=-1, rf=-1, **configs):
    return NewTopic(name, partitions, rf, dict(configs))


def test_topic_count_limit_names_the_limit_and_the_use():
    usage = Usage({"a": 1, "b": 1})
    with pytest.raises(Violation, match="max_topics is 2 and the tenant has 2 topics"):
        check_new_topic(Limits(max_topics=2), usage, topic(), None)


def test_default_partitions_fill_a_create_that_asks_for_the_broker_default():
    t = topic()
    check_new_topic(Limits(default_partitions=3), Usage(), t, None)
    assert t.partitions == 3


def test_total_partitions_count_across_topics():
    with pytest.raises(Violation, match="max_partitions is 10, the tenant has 8 and this would add 3"):
        check_new_topic(Limits(max_partitions=10), Usage({"a": 8}), topic(partitions=3), None)


def test_partitions_per_topic():
    with pytest.raises(Violation, match="max_partitions_per_topic is 4, and t would have 5"):
        check_new_topic(Limits(max_partitions_per_topic=4), Usage(), topic(partitions=5), None)


def test_allowed_creates_are_counted_so_one_request_cannot_exceed_a_limit():
    usage, limits = Usage(), Limits(max_topics=1)
    check_new_topic(limits, usage, topic("a"), None)
    with pytest.raises(Violation):
        check_new_topic(limits, usage, topic("b"), None)


def test_the_operator_sets_the_replication_factor():
    t = topic()
    check_new_topic(Limits(replication_factor=3), Usage(), t, None)
    assert t.replication_factor == 3
    check_new_topic(Limits(replication_factor=3), Usage(), topic(rf=3), None)
    with pytest.raises(Violation, match="set by the operator to 3; ask for -1 or 3, not 1"):
        check_new_topic(Limits(replication_factor=3), Usage(), topic(rf=1), None)


def test_replica_assignments_are_refused():
    with pytest.raises(Violation, match="replica assignments"):
        check_new_topic(Limits(), Usage(), NewTopic("t", -1, -1, {}, assigned=True), None)


def test_retention_must_lie_within_the_bounds_and_infinite_is_above_any_maximum():
    limits = Limits(min_retention_ms=DAY, max_retention_ms=7 * DAY)
    check_topic_configs(limits, {"retention.ms": str(2 * DAY)}, 1, 1, None)
    with pytest.raises(Violation, match=f"retention.ms 1000 is below the minimum, min_retention_ms {DAY}"):
        check_topic_configs(limits, {"retention.ms": "1000"}, 1, 1, None)
    with pytest.raises(Violation, match="infinite"):
        check_topic_configs(limits, {"retention.ms": "-1"}, 1, 1, None)
    with pytest.raises(Violation, match="above the maximum"):
        check_topic_configs(Limits(max_retention_ms=DAY), {}, 1, 1, None)  # the broker default is 7 days


def test_default_retention_is_set_on_creates_without_one():
    t = topic()
    check_new_topic(Limits(default_retention_ms=DAY, max_retention_ms=DAY), Usage(), t, None)
    assert t.configs["retention.ms"] == str(DAY)


def test_cleanup_policies():
    limits = Limits(cleanup_policies=("delete",))
    check_topic_configs(limits, {"cleanup.policy": "delete"}, 1, 1, None)
    with pytest.raises(Violation, match=re.escape("cleanup.policy 'compact' is not allowed; allowed: delete")):
        check_topic_configs(limits, {"cleanup.policy": "compact,delete"}, 1, 1, None)


def test_min_insync_replicas_is_the_operators():
    t = topic()
    check_new_topic(Limits(min_insync_replicas=2), Usage(), t, None)
    assert t.configs["min.insync.replicas"] == "2"
    with pytest.raises(Violation, match=re.escape("min.insync.replicas is set by the operator to 2, not 1")):
        check_topic_configs(Limits(min_insync_replicas=2), {"min.insync.replicas": "1"}, 1, 1, None)


def test_storage_is_bounded_by_quota_retention_and_replication():
    limits = Limits(max_storage_bytes=10**9)
    check_topic_configs(limits, {"retention.ms": str(3600_000)}, 1, 1, 100_000)  # 360 MB
    with pytest.raises(Violation, match="max_storage_bytes is 1000000000, and this topic could hold 1080000000"):
        check_topic_configs(limits, {"retention.ms": str(3600_000)}, 1, 3, 100_000)
    check_topic_configs(limits, {"retention.ms": "-1", "retention.bytes": str(10**8)}, 3, 3, None)  # 900 MB
    with pytest.raises(Violation, match=re.escape("needs a finite retention.ms")):
        check_topic_configs(limits, {"retention.ms": "-1"}, 1, 1, 100_000)


def test_non_numeric_settings_are_refused_not_crashed_on():
    with pytest.raises(Violation, match=re.escape("retention.ms must be a whole number")):
        check_topic_configs(Limits(max_retention_ms=DAY), {"retention.ms": "soon"}, 1, 1, None)


def test_growing_partitions():
    usage = Usage({"t": 2, "u": 4})
    check_new_partitions(Limits(max_partitions=8), usage, "t", 4)
    assert usage.partitions == 8
    with pytest.raises(Violation, match="max_partitions is 8"):
        check_new_partitions(Limits(max_partitions=8), usage, "u", 5)


def test_limit_settings_are_validated():
    with pytest.raises(LimitError, match="unknown limit 'max_topicz'"):
        Limits.from_dict("tenant a limits", {"max_topicz": 1})
    with pytest.raises(LimitError, match="min_retention_ms 10 is above max_retention_ms 5"):
        Limits.from_dict("tenant a limits", {"min_retention_ms": 10, "max_retention_ms": 5})
    with pytest.raises(LimitError, match="cleanup_policies"):
        Limits.from_dict("tenant a limits", {"cleanup_policies": ["forever"]})


def test_tenant_defaults_apply_key_by_key():
    registry = Registry.from_config({
        "tenant_defaults": {"quotas": {"produce_bytes_per_sec": 100, "max_connections": 5},
                            "limits": {"max_topics": 10}},
        "tenants": [{"id": "a", "quotas": {"produce_bytes_per_sec": 200}, "limits": {"max_groups": 3}},
                    {"id": "b"}]})
    a, b = registry.tenants["a"], registry.tenants["b"]
    assert (a.quotas.produce_bytes_per_sec, a.quotas.max_connections) == (200, 5)
    assert (a.limits.max_topics, a.limits.max_groups) == (10, 3)
    assert b.quotas.produce_bytes_per_sec == 100 and b.limits.max_groups is None


def test_a_user_quota_must_name_a_user_of_the_tenant():
    with pytest.raises(RegistryError, match="user ghost is not a user of this tenant"):
        Registry.from_config({"tenants": [{"id": "a", "quotas": {"users": {"ghost": {"requests_per_sec": 1}}}}]})


def test_an_incremental_change_is_checked_only_for_the_keys_it_changes():
    limits = Limits(max_retention_ms=DAY, cleanup_policies=("delete",), max_storage_bytes=10**9)
    check_topic_configs(limits, {"cleanup.policy": "delete"}, 1, 1, None, partial=True)  # retention untouched
    with pytest.raises(Violation, match="above the maximum"):
        check_topic_configs(limits, {"retention.ms": str(2 * DAY)}, 1, 1, None, partial=True)


def test_auto_created_topics_would_bypass_topic_limits_so_the_two_are_refused_together():
    with pytest.raises(RegistryError, match="allow_auto_create_topics cannot be combined with topic limits"):
        Registry.from_config({"tenants": [{"id": "a", "allow_auto_create_topics": True,
                                           "limits": {"max_topics": 3}}]})
    Registry.from_config({"tenants": [{"id": "a", "allow_auto_create_topics": True, "limits": {"max_groups": 3}}]})
