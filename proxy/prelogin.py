"""Limits on connections that have not logged in yet, so that unauthenticated peers cost little and can
never make a logged-in tenant wait.

- Their frames may be at most ``sasl_max_receive_bytes`` (Kafka's sasl.server.max.receive.size).
- Buffers for their larger frames come from a small budget of their own, never the tenants' one.
- Each IP may hold ``max_unauthenticated_connections_per_ip`` of them at once, and open new ones at
  ``unauthenticated_connections_per_ip_per_sec`` (as Kafka's per-IP limit of KIP-612); the rest are
  closed at once.
- A connection must log in within ``login_timeout_ms``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tenantry.proxy.config import ProxyConfig
from tenantry.proxy.memory import MemoryBudget
from tenantry.tenants.token_bucket import TokenBucket

PRE_LOGIN_SCRATCH = 4 * 1024  # SASL frames are small: an idle unauthenticated socket holds at most this


class PreLoginLimits:
    def __init__(self, config: ProxyConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_frame = min(config.sasl_max_receive_bytes, config.max_frame_bytes)
        self.memory = MemoryBudget(config.max_buffered_bytes_before_login)
        self.clock = clock
        self.by_ip: dict[str, int] = {}
        self.rate = 0.0
        self._rates: dict[str, TokenBucket] = {}
        self.apply_settings(config)

    def apply_settings(self, config: ProxyConfig) -> None:
        """The per-IP limits, at start and on reload (the frame and memory caps need a restart)."""
        self.max_per_ip = config.max_unauthenticated_connections_per_ip
        if config.unauthenticated_connections_per_ip_per_sec != self.rate:  # unchanged: keep the IPs' buckets
            self.rate = config.unauthenticated_connections_per_ip_per_sec
            self._rates = {}

    def admit(self, ip: str) -> str | None:
        """Count a new unauthenticated connection from `ip`; None if allowed, else why it is refused."""
        if self.max_per_ip and self.by_ip.get(ip, 0) >= self.max_per_ip:
            return f"{ip} has {self.max_per_ip} connections not logged in (max_unauthenticated_connections_per_ip)"
        if self.rate:
            bucket = self._rates.get(ip)
            now = self.clock()
            if bucket is None:
                if len(self._rates) > 10_000:  # forget the idle ones: a full bucket is the same as none
                    self._rates = {k: b for k, b in self._rates.items() if b.delay(now) > 0}
                bucket = self._rates[ip] = TokenBucket(self.rate, self.rate, now)
            if bucket.record(1, now) > 0:
                return (f"{ip} opens connections faster than {self.rate:g}/s "
                        "(unauthenticated_connections_per_ip_per_sec)")
        self.by_ip[ip] = self.by_ip.get(ip, 0) + 1
        return None

    def done(self, ip: str) -> None:
        """The connection logged in or closed."""
        left = self.by_ip.get(ip, 0) - 1
        if left > 0:
            self.by_ip[ip] = left
        else:
            self.by_ip.pop(ip, None)


class PreLoginTicket:
    """One connection's place among the unauthenticated ones of its IP, and its login deadline."""

    def __init__(self, limits: PreLoginLimits, ip: str, timeout: float, on_timeout: Callable[[], None]) -> None:
        self._limits = limits
        self._ip = ip
        self.refusal = limits.admit(ip)
        self._held = self.refusal is None
        self._timer = asyncio.get_running_loop().call_later(timeout, on_timeout) if self._held else None

    def release(self) -> None:
        """The connection logged in or closed: it no longer counts, and has no deadline."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held:
            self._held = False
            self._limits.done(self._ip)
