"""A token bucket that may go into debt, the way Kafka's quotas (KIP-13, KIP-599) work.

Usage is recorded after the fact: a 1 MB produce is admitted even when the bucket holds less, and the
debt becomes the delay that brings the average back to the rate. A rejected request would have to be
sent again, which costs the cluster more than admitting it and throttling what follows.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]  # monotonic seconds; tests pass a fake one


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`; `delay()` says how long the debt takes to clear."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"a token bucket needs a positive rate and burst, not {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def record(self, amount: float, now: float) -> float:
        """Take `amount` tokens (into debt if need be); the delay in seconds before the next use."""
        self._refill(now)
        self.tokens -= amount
        return self.delay(now)

    def delay(self, now: float) -> float:
        """Seconds until the bucket is out of debt; 0 when it holds tokens."""
        self._refill(now)
        return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def has_tokens(self, now: float) -> bool:
        """Whether a request may go ahead (KIP-599: admitted while the bucket is not empty)."""
        self._refill(now)
        return self.tokens > 0

    def unrecord(self, amount: float, now: float) -> None:
        """Give back tokens for work that was not done after all."""
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + amount)

    def retune(self, rate: float, burst: float, now: float) -> None:
        """A new rate from here on; tokens earned so far are kept, up to the new burst."""
        self._refill(now)
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, burst)
