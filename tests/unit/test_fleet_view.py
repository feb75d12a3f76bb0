"""Fleet coordination without Kafka: reports out of live meters, slices back into them, three replicas simulated
by passing each one's reports to the others' FleetShares (the topic's part, which the integration tests cover)."""

from __future__ import annotations

import pytest

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.fleet import CAPACITY, FleetView, topic_problems
from tenantry.proxy.quota_book import QuotaBook
from tenantry.tenants.credentials import PlainCredential
from tenantry.tenants.fleet_shares import FleetShares, decode_report, encode_report
from tenantry.tenants.quotas import CONNECTIONS, PRODUCE
from tenantry.tenants.registry import Registry

MB = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tenants(**quotas: object) -> Registry:
    alice = {"name": "alice", "credentials": {"PLAIN": PlainCredential.create("x" * 12).to_dict()}}
    return Registry.from_config({"tenants": [{"id": "acme", "users": [alice], "quotas": {
        **quotas, "users": {"alice": {"produce_bytes_per_sec": 600_000}}}}]})


class Replica:
    def __init__(self, name: str, clock: Clock, registry: Registry, **settings: object) -> None:
        self.book = QuotaBook(ProxyConfig(upstream=["x:1"], **settings), clock)  # type: ignore[arg-type]
        self.shares = FleetShares(name, 1.0, clock=clock, wall=clock)
        self.view = FleetView(self.book, self.shares, clock)
        self.meters = self.book.for_tenant(registry.tenants["acme"])


def exchange(replicas: list[Replica], clock: Clock, rounds: int = 1) -> None:
    """One interval: every replica reports, every report reaches every replica (through the wire format)."""
    for _ in range(rounds):
        clock.now += 1.0
        reports = [encode_report(r.view.report(), clock.now) for r in replicas]
        for r in replicas:
            for value in reports:
                r.shares.receive(decode_report(value)[0])
            r.view.apply()


def flat_out(replica: Replica, clock: Clock, user: str = "bob", step: float = 0.01) -> None:
    """A client producing as fast as its throttles allow for the next second (delays are waited out)."""
    until, t = clock.now + 1.0, clock.now
    while t < until:
        clock.now = t
        t += max(step, replica.meters.record(PRODUCE, user, 50_000))
    clock.now = until - 1.0  # exchange() moves the clock by the interval


def test_a_tenant_flat_out_on_two_of_three_replicas_gets_its_quota_in_total_split_by_connections():
    clock, registry = Clock(), tenants(produce_bytes_per_sec=3 * MB)
    a, b, c = (Replica(n, clock, registry) for n in "abc")
    a.meters.open_connection("bob")
    a.meters.open_connection("bob")
    b.meters.open_connection("bob")
    exchange([a, b, c], clock)  # idle: equal thirds
    assert [r.meters.effective_rate(PRODUCE) for r in (a, b, c)] == pytest.approx([MB, MB, MB])
    for _ in range(5):
        flat_out(a, clock)
        flat_out(b, clock)
        exchange([a, b, c], clock)
    rates = [r.meters.effective_rate(PRODUCE) or 0 for r in (a, b, c)]
    assert sum(rates) == pytest.approx(3 * MB)
    assert rates[2] == pytest.approx(3 * MB * 0.05 / 3)  # the idle replica keeps a floor for a new client
    assert rates[0] == pytest.approx(2 * rates[1])  # two connections there, one here


def test_a_replica_that_stops_reporting_is_dropped_and_the_others_take_its_share():
    clock, registry = Clock(), tenants(produce_bytes_per_sec=3 * MB)
    a, b, c = (Replica(n, clock, registry) for n in "abc")
    exchange([a, b, c], clock)
    exchange([a, b], clock, rounds=4)  # c is gone
    assert a.shares.fleet_size == 2
    assert sum(r.meters.effective_rate(PRODUCE) or 0 for r in (a, b)) == pytest.approx(3 * MB)


def test_without_reports_each_replica_falls_back_to_the_limit_over_the_last_fleet_size():
    clock, registry = Clock(), tenants(produce_bytes_per_sec=3 * MB, max_connections=7)
    a, b, c = (Replica(n, clock, registry) for n in "abc")
    exchange([a, b, c], clock)
    clock.now += 10  # the topic is gone: nothing arrives
    a.view.apply()
    assert not a.shares.coordinated
    assert a.meters.effective_rate(PRODUCE) == pytest.approx(MB)
    assert a.meters.slices["max_connections"] == 2  # 7 // 3


def test_max_connections_is_split_in_whole_connections_that_add_up_to_the_limit():
    clock, registry = Clock(), tenants(max_connections=5)
    a, b, c = (Replica(n, clock, registry) for n in "abc")
    exchange([a, b, c], clock)
    assert sum(r.meters.slices["max_connections"] for r in (a, b, c)) == 5
    for _ in range(6):  # clients keep trying on a and b: refusals move the slices there
        for r in (a, b):
            while r.meters.open_connection("bob") is None:
                pass
        exchange([a, b, c], clock)
    opened = [r.meters.connections for r in (a, b, c)]
    assert sum(r.meters.slices["max_connections"] for r in (a, b, c)) == 5
    assert sum(opened) <= 5 + 1  # a slice moved under a connection already open is not closed
    assert opened[2] == 0 and opened[0] >= 2 and opened[1] >= 2


def test_a_users_own_quota_is_split_too():
    clock, registry = Clock(), tenants()
    a, b = Replica("a", clock, registry), Replica("b", clock, registry)
    exchange([a, b], clock)
    assert a.meters.slices["produce/alice"] + b.meters.slices["produce/alice"] == pytest.approx(600_000)
    assert a.meters.record(PRODUCE, "alice", 600_000) > 0  # half the user's quota here: a whole one is owed


def test_the_proxy_wide_capacity_is_split_and_the_accept_rate_follows():
    clock, registry = Clock(), tenants()
    a, b = (Replica(n, clock, registry, capacity_connections_per_sec=10.0) for n in "ab")
    exchange([a, b], clock)
    assert a.book.tuner.capacity[CONNECTIONS] + b.book.tuner.capacity[CONNECTIONS] == pytest.approx(10)
    assert a.book.accepts is not None and a.book.accepts.rate == pytest.approx(5)
    assert (CAPACITY, CONNECTIONS) in a.view.report().usage


def test_a_tenant_first_seen_here_starts_from_its_slice():
    clock, registry = Clock(), tenants(produce_bytes_per_sec=3 * MB)
    a, b, c = (Replica(n, clock, registry) for n in "abc")
    exchange([a, b, c], clock)
    del a.book.meters["acme"]
    assert a.book.for_tenant(registry.tenants["acme"]).effective_rate(PRODUCE) == pytest.approx(MB)


def test_a_tenant_whose_prefix_covers_the_coordination_topic_is_refused():
    # Tenant prefixes start with a letter or digit, so the default "__tenantry_fleet" is out of every
    # namespace; an operator's own name may not be.
    config = ProxyConfig(upstream=["x:1"], quota_coordination="kafka", quota_coordination_topic="acme.fleet")
    problems = topic_problems(config, tenants())
    assert problems and "acme" in problems[0]
    assert not topic_problems(ProxyConfig(upstream=["x:1"], quota_coordination="kafka"), tenants())
    assert not topic_problems(ProxyConfig(upstream=["x:1"], quota_coordination_topic="acme.fleet"), tenants())


def test_connections_opened_by_a_replica_that_joins_a_tenant_late_never_push_the_fleet_over_max_connections():
    # The settled view is two rounds old: when b's first connections of acme open, a does not see them yet,
    # and the split it computes would give a everything. A replica waits out that lag before using more.
    clock, registry = Clock(), tenants(max_connections=6)
    a, b, c = (Replica(n, clock, registry) for n in "abc")
    for r in (a, b, c):
        r.shares.lag_rounds = 2
    del b.book.meters["acme"], c.book.meters["acme"]
    replicas = [a, b, c]
    for round_ in range(12):
        if round_ == 3:
            b.meters = b.book.for_tenant(registry.tenants["acme"])
        for r in (a, b) if round_ >= 3 else (a,):
            while r.meters.open_connection("bob") is None:
                pass
        opened = sum(r.meters.connections for r in (a, b))
        assert opened <= 6, (round_, a.meters.connections, b.meters.connections)
        clock.now += 1.0
        reports = [r.view.report() for r in replicas]
        for r in replicas:
            for report in reports:
                r.shares.receive(report, sent_at=clock.now)
            r.view.apply()
    assert a.meters.connections + b.meters.connections >= 5  # and the slices did move to where the demand is
