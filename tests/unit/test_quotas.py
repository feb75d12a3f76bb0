"""Quota arithmetic with a fake clock: token buckets, per-tenant meters, auto-tuned fair shares."""

import pytest

from tenantry.tenants.autotune import AutoTuner, Demand, fair_shares
from tenantry.tenants.quotas import CONNECTIONS, FETCH, PRODUCE, REQUESTS, Meters, QuotaError, QuotaSpec
from tenantry.tenants.token_bucket import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_full_bucket_admits_its_burst_without_delay():
    bucket = TokenBucket(rate=100, burst=100, now=0)
    assert bucket.record(100, 0) == 0


def test_debt_becomes_the_delay_that_restores_the_rate():
    bucket = TokenBucket(rate=100, burst=100, now=0)
    assert bucket.record(300, 0) == pytest.approx(2.0)  # 200 tokens owed at 100/s
    assert bucket.delay(1.0) == pytest.approx(1.0)
    assert bucket.delay(2.0) == 0


def test_a_bucket_never_holds_more_than_its_burst():
    bucket = TokenBucket(rate=100, burst=50, now=0)
    bucket.record(50, 0)
    assert bucket.record(120, 100.0) == pytest.approx(0.7)  # refilled to 50 only, not 10,000


def test_a_client_obeying_the_delays_averages_the_rate():
    bucket, now, sent = TokenBucket(rate=1_000_000, burst=1_000_000, now=0), 0.0, 0
    while now < 20:
        sent += 64_000
        now += max(bucket.record(64_000, now), 0.001)
    assert sent / now == pytest.approx(1_000_000, rel=0.06)  # the 1 s burst is 5% of 20 s


def test_retune_keeps_the_debt():
    bucket = TokenBucket(rate=100, burst=100, now=0)
    bucket.record(300, 0)
    bucket.retune(200, 200, 0)
    assert bucket.delay(0) == pytest.approx(1.0)  # 200 owed, now at 200/s


def test_quota_spec_refuses_unknown_and_non_positive_settings():
    with pytest.raises(QuotaError, match="unknown quota 'produce_mb'"):
        QuotaSpec.from_dict("tenant a quotas", {"produce_mb": 1})
    with pytest.raises(QuotaError, match="produce_bytes_per_sec must be a positive number"):
        QuotaSpec.from_dict("tenant a quotas", {"produce_bytes_per_sec": 0})
    with pytest.raises(QuotaError, match="whole number"):
        QuotaSpec.from_dict("tenant a quotas", {"max_connections": 2.5})


def test_unset_quotas_are_unlimited():
    meters = Meters(QuotaSpec(), {}, FakeClock())
    assert meters.record(PRODUCE, "u", 10**12) == 0
    assert meters.used[PRODUCE] == 10**12  # still counted, for the tuner


def test_a_tenant_quota_covers_all_its_users():
    clock = FakeClock()
    meters = Meters(QuotaSpec(produce_bytes_per_sec=1000), {}, clock)
    meters.record(PRODUCE, "alice", 1000)
    assert meters.record(PRODUCE, "alicia", 500) == pytest.approx(0.5)


def test_a_user_override_adds_a_tighter_bucket_and_the_longer_delay_wins():
    clock = FakeClock()
    meters = Meters(QuotaSpec(produce_bytes_per_sec=1000), {"alice": QuotaSpec(produce_bytes_per_sec=100)}, clock)
    assert meters.record(PRODUCE, "alice", 200) == pytest.approx(1.0)  # user: 100 owed at 100/s
    assert meters.record(PRODUCE, "bob", 1000) == pytest.approx(0.2)  # tenant: 200 owed at 1000/s


def test_fetch_debt_is_read_without_using_anything():
    clock = FakeClock()
    meters = Meters(QuotaSpec(fetch_bytes_per_sec=1000), {}, clock)
    assert meters.debt(FETCH, "u") == 0
    meters.record(FETCH, "u", 3000)
    assert meters.debt(FETCH, "u") == pytest.approx(2.0)
    clock.advance(2.0)
    assert meters.debt(FETCH, "u") == 0


def test_request_rate_is_counted_per_request():
    meters = Meters(QuotaSpec(requests_per_sec=10), {}, FakeClock())
    delays = [meters.record(REQUESTS, "u", 1) for _ in range(15)]
    assert delays[9] == 0 and delays[14] == pytest.approx(0.5)


def test_connection_limits_count_the_tenant_and_the_user():
    meters = Meters(QuotaSpec(max_connections=3), {"a": QuotaSpec(max_connections=1)}, FakeClock())
    assert meters.open_connection("a") is None
    assert "user a's max_connections is 1" in meters.open_connection("a")
    assert meters.open_connection("b") is None and meters.open_connection("b") is None
    assert "tenant's max_connections is 3 and it has 3 open" in meters.open_connection("c")
    meters.close_connection("b")
    assert meters.open_connection("c") is None


def test_reconfigure_applies_new_rates_to_live_buckets():
    clock = FakeClock()
    meters = Meters(QuotaSpec(produce_bytes_per_sec=1000), {}, clock)
    meters.reconfigure(QuotaSpec(produce_bytes_per_sec=100), {})
    assert meters.record(PRODUCE, "u", 200) == pytest.approx(1.0)  # burst cut to 100, 100 owed at 100/s


# -- auto-tuning -------------------------------------------------------------------------------------
def test_no_tuning_while_the_quotas_fit_the_capacity():
    demands = {"a": Demand(quota=40, used=40, limit=40), "b": Demand(quota=60, used=60, limit=60)}
    assert fair_shares(100, demands) == {"a": 40, "b": 60}


def test_heavy_tenants_share_the_capacity_in_proportion_to_their_quotas():
    demands = {"a": Demand(quota=100, used=100, limit=100), "b": Demand(quota=300, used=300, limit=300)}
    shares = fair_shares(200, demands)
    assert shares == pytest.approx({"a": 50, "b": 150})


def test_light_tenants_get_a_little_above_their_use_and_the_rest_goes_to_heavy_ones():
    # Confluent's picture: four equal quotas, A and B below the fair share, C and D wanting more.
    demands = {"a": Demand(100, 10, 100), "b": Demand(100, 20, 100), "c": Demand(100, 100, 100),
               "d": Demand(100, 100, 100)}
    shares = fair_shares(200, demands)
    assert shares["a"] == pytest.approx(11) and shares["b"] == pytest.approx(22)
    assert shares["c"] == shares["d"] == pytest.approx((200 - 33) / 2)
    assert sum(shares.values()) == pytest.approx(200)


def test_a_tenant_pinned_at_its_tuned_limit_is_taken_to_want_its_full_quota():
    demands = {"a": Demand(100, 49, 50), "b": Demand(100, 10, 50)}
    shares = fair_shares(100, demands)
    assert shares["b"] == pytest.approx(11) and shares["a"] == pytest.approx(89)


def test_spare_capacity_is_spread_when_everyone_is_satisfied():
    demands = {"a": Demand(100, 10, 100), "b": Demand(100, 10, 100)}
    shares = fair_shares(150, demands)
    assert shares == pytest.approx({"a": 75, "b": 75})


def test_the_tuner_limits_active_tenants_and_leaves_idle_ones_alone():
    clock = FakeClock()
    meters = {t: Meters(QuotaSpec(produce_bytes_per_sec=1000), {}, clock) for t in ("a", "b", "idle")}
    tuner = AutoTuner({PRODUCE: 1000, FETCH: 0, CONNECTIONS: 0}, idle_after=60, clock=clock)
    tuner.tick(meters)
    meters["idle"].record(PRODUCE, "u", 1)
    clock.advance(120)  # "idle" last produced 120 s ago
    tuner.tick(meters)
    for _ in range(10):
        meters["a"].record(PRODUCE, "u", 1000)
        meters["b"].record(PRODUCE, "u", 1000)
        clock.advance(1)
    tuned = tuner.tick(meters)
    assert tuned["a"][PRODUCE] == pytest.approx(500) and tuned["b"][PRODUCE] == pytest.approx(500)
    assert tuned["idle"] == {}
    assert meters["a"].effective_rate(PRODUCE) == pytest.approx(500)
    assert meters["idle"].effective_rate(PRODUCE) == 1000


def test_a_tenant_without_a_quota_is_still_held_to_the_capacity():
    clock = FakeClock()
    meters = {"a": Meters(QuotaSpec(), {}, clock)}
    tuner = AutoTuner({PRODUCE: 1000}, idle_after=60, clock=clock)
    tuner.tick(meters)
    meters["a"].record(PRODUCE, "u", 5000)
    clock.advance(1)
    tuner.tick(meters)
    assert meters["a"].effective_rate(PRODUCE) == pytest.approx(1000)


def test_the_proxy_wide_connection_rate_delays_new_connections():
    from tenantry.proxy.config import ProxyConfig
    from tenantry.proxy.quota_book import QuotaBook

    clock = FakeClock()
    book = QuotaBook(ProxyConfig(upstream=["x:1"], capacity_connections_per_sec=2), clock)
    assert [book.accept_delay() for _ in range(4)] == pytest.approx([0, 0, 0.5, 1.0])
    assert QuotaBook(ProxyConfig(upstream=["x:1"]), clock).accept_delay() == 0
