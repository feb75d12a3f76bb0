"""Limits before login, and each tenant's part of the large-frame budget (fake clock, no sockets)."""

from __future__ import annotations

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.memory import MemoryBudget, TenantBudget
from tenantry.proxy.prelogin import PreLoginLimits


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def limits(**settings) -> PreLoginLimits:
    return PreLoginLimits(ProxyConfig(upstream=["h:1"], **settings), Clock())


def test_the_frame_cap_before_login_is_kafkas_sasl_receive_size():
    assert limits().max_frame == 512 * 1024
    assert limits(max_frame_bytes=1000).max_frame == 1000  # never above the general cap


def test_each_ip_may_hold_only_so_many_unauthenticated_connections():
    pre = limits(max_unauthenticated_connections_per_ip=2)
    assert pre.admit("10.0.0.1") is None and pre.admit("10.0.0.1") is None
    assert "max_unauthenticated_connections_per_ip" in (pre.admit("10.0.0.1") or "")
    assert pre.admit("10.0.0.2") is None  # another IP is not affected
    pre.done("10.0.0.1")  # one logged in (or left)
    assert pre.admit("10.0.0.1") is None


def test_each_ip_may_open_connections_only_at_its_rate():
    pre = limits(unauthenticated_connections_per_ip_per_sec=2, max_unauthenticated_connections_per_ip=0)
    assert [pre.admit("10.0.0.1") for _ in range(3)][:2] == [None, None]
    assert "unauthenticated_connections_per_ip_per_sec" in (pre.admit("10.0.0.1") or "")
    pre.clock.now += 5  # type: ignore[attr-defined]
    assert pre.admit("10.0.0.1") is None


def test_unauthenticated_buffers_come_from_their_own_budget():
    pre = limits(max_buffered_bytes_before_login=1000)
    assert pre.memory.limit == 1000


def test_a_tenant_holds_at_most_its_cap_of_the_shared_budget():
    shared = MemoryBudget(1000)
    noisy, quiet = TenantBudget(shared, 500), TenantBudget(shared, 500)
    assert noisy.allocate(400) is not None
    assert noisy.allocate(200) is None  # over its cap, though the shared budget has room
    assert quiet.allocate(500) is not None  # the other tenant still gets its part
    noisy.release(400)
    assert noisy.used == 0 and shared.used == 500


def test_one_frame_larger_than_the_cap_may_still_be_received():
    assert TenantBudget(MemoryBudget(1000), 100).allocate(800) is not None
