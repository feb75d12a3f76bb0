"""Fleet-wide limits, the arithmetic: slices add up to the tenant's limit whatever the spread, follow the
demand, drop a replica that stops reporting, and fall back to limit / fleet size without reports."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantry.tenants.fleet_shares import FleetShares, Report, Usage, allocate

MB = 1_000_000.0


def test_two_flat_out_producers_on_one_replica_one_on_another_none_on_the_third():
    shares = allocate(3 * MB, {"a": Usage(1.5 * MB, True, 2), "b": Usage(1.5 * MB, True, 1), "c": Usage(0, False, 0)})
    assert sum(shares.values()) == pytest.approx(3 * MB)
    assert shares["c"] == pytest.approx(0.05 * MB)  # the floor: a client arriving there is not starved
    assert shares["a"] == pytest.approx(2 * shares["b"])  # in proportion to the producers held back there


def test_a_light_replica_keeps_what_it_uses_and_the_rest_goes_where_the_tenant_is_held_back():
    shares = allocate(10 * MB, {"a": Usage(1 * MB, False), "b": Usage(6 * MB, True)})
    assert shares["a"] == pytest.approx(1.25 * MB) and shares["b"] == pytest.approx(8.75 * MB)


def test_nobody_held_back_the_leftover_is_spread_so_the_fleet_still_enforces_the_limit():
    shares = allocate(10 * MB, {"a": Usage(1 * MB, False), "b": Usage(2 * MB, False)})
    assert sum(shares.values()) == pytest.approx(10 * MB) and shares["b"] == pytest.approx(2 * shares["a"])


usage = st.builds(Usage, st.floats(0, 1e9), st.booleans(), st.integers(0, 50))


@given(st.floats(1, 1e10), st.dictionaries(st.text(min_size=1, max_size=3), usage, min_size=1, max_size=8))
def test_the_slices_always_add_up_to_the_limit_and_none_is_negative(limit, fleet):
    shares = allocate(limit, fleet)
    assert set(shares) == set(fleet)
    assert sum(shares.values()) == pytest.approx(limit, rel=1e-9)
    assert all(share >= 0 for share in shares.values())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_silent_replica_is_dropped_and_without_reports_the_fallback_is_limit_over_the_last_fleet_size():
    clock = Clock()
    fleet = FleetShares("a", interval=1.0, clock=clock)
    assert not fleet.coordinated and fleet.share("acme", "produce", 3 * MB) == 3 * MB  # alone, never told
    for replica in "abc":
        fleet.receive(Report(replica, {("acme", "produce"): Usage(1 * MB, True)}))
    assert fleet.coordinated and fleet.fleet_size == 3
    assert fleet.share("acme", "produce", 3 * MB) == pytest.approx(1 * MB)
    clock.now = 2.5
    fleet.receive(Report("a", {("acme", "produce"): Usage(1 * MB, True)}))
    fleet.receive(Report("b", {("acme", "produce"): Usage(1 * MB, True)}))
    clock.now = 3.5  # c last reported 3.5 intervals ago: dropped, its share taken over
    assert fleet.fleet_size == 2 and fleet.share("acme", "produce", 3 * MB) == pytest.approx(1.5 * MB)
    clock.now = 10.0  # the coordination topic went quiet: limit / the last fleet size known
    assert not fleet.coordinated and fleet.share("acme", "produce", 3 * MB) == pytest.approx(1.5 * MB)


@given(st.text(min_size=1, max_size=10), st.dictionaries(st.tuples(st.text(max_size=8), st.sampled_from(
    ["produce", "fetch", "connections"])), usage, max_size=20), st.floats(0, 2e9))
def test_reports_round_trip_through_the_coordination_topics_format(replica, usages, sent_at):
    from tenantry.tenants.fleet_shares import decode_report, encode_report

    assert decode_report(encode_report(Report(replica, usages), sent_at)) == (Report(replica, usages), sent_at)


@pytest.mark.parametrize("value", [b"", b"garbage", b"[]", b'{"format": 2, "replica": "a", "sent_at": 1, "usage": []}',
                                   b'{"format": 1, "replica": "", "sent_at": 1, "usage": []}',
                                   b'{"format": 1, "replica": "a", "sent_at": 1, "usage": [["t", "p", -5, true, 1]]}',
                                   b'{"format": 1, "replica": "a", "sent_at": 1, "usage": [["t", "p", 1, 1, 1]]}',
                                   b'{"format": 1, "replica": "a", "sent_at": 1, "usage": [["t"]]}'])
def test_anything_but_a_report_is_refused_with_report_error(value):
    from tenantry.tenants.fleet_shares import ReportError, decode_report

    with pytest.raises(ReportError):
        decode_report(value)


def test_with_lag_rounds_replicas_that_read_at_different_moments_still_split_by_the_same_reports():
    now = [1000.0]
    a = FleetShares("a", 1.0, lag_rounds=2, clock=lambda: now[0], wall=lambda: now[0])
    b = FleetShares("b", 1.0, lag_rounds=2, clock=lambda: now[0], wall=lambda: now[0])
    for step in range(6):  # each round both report; b reads a's report late, after computing
        now[0] = 1000.0 + step + 0.1
        # a's demand jumps at round 2: b, reading a's report late, still splits by the old one
        held_a = Report("a", {("acme", "max_connections"): Usage(3, True, 3) if step >= 2 else Usage(1, False, 1)})
        held_b = Report("b", {("acme", "max_connections"): Usage(2, True, 2)})
        for fleet in (a, b):
            fleet.receive(held_b, sent_at=now[0])
        a.receive(held_a, sent_at=now[0])
        total = a.share_whole("acme", "max_connections", 6) + b.share_whole("acme", "max_connections", 6)
        b.receive(held_a, sent_at=now[0])
        if step >= 2:  # from the first settled round on (before it, each knows only the fleet it has seen)
            assert total == 6, step
    now[0] += 1.0
    assert a.share_whole("acme", "max_connections", 6) + b.share_whole("acme", "max_connections", 6) == 6


def test_before_any_report_is_old_enough_each_replica_takes_the_limit_over_the_live_fleet():
    now = [1000.0]
    a = FleetShares("a", 1.0, lag_rounds=2, clock=lambda: now[0], wall=lambda: now[0])
    for replica in "abc":
        a.receive(Report(replica, {}), sent_at=now[0])
    assert a.share("acme", "produce", 3 * MB) == pytest.approx(MB)
    assert a.share_whole("acme", "max_connections", 7) == 2
