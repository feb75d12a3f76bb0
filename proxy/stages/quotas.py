"""Stage: a tenant's quotas, all of them, the way a Kafka broker applies them (KIP-13, KIP-219, KIP-599).

- Requests and produced bytes are charged when the request passes; the delay is owed at once.
- A Fetch while the tenant owes fetch bandwidth is answered here, empty, with the delay.
- Fetched bytes are charged when the broker's response comes back.
- The delay is told to the client in the response's ``throttle_time_ms`` (the larger of the broker's
  and the proxy's), and the proxy reads nothing more from the connection until it has passed: a
  broker reads one request per connection at a time, so its mute stops the next; the proxy pipelines,
  and clients that keep many requests in flight (librdkafka) would otherwise run far into debt.
- Produce with acks=0 has no response to carry the delay: the mute is the only signal.
- :func:`release`: for response versions whose clients back off by themselves, the response goes out
  at once; for older ones it is held for the delay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol.envelope import response_frame
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.fetch_response import FetchResponse
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import AnswerBytes, Outcome
from tenantry.proxy.throttle_field import (
    client_throttles,
    has_throttle_field,
    overwrite_int32,
    read_throttle,
    rewrite_throttle_field,
    throttle_offset,
)

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext


def charge(ex: Exchange, ctx: StageContext) -> Outcome | None:
    throttler = ctx.throttler
    if throttler is None:
        return None
    now = ctx.clock()
    if ex.api_key == ApiKey.FETCH and (debt := throttler.fetch_debt()) > 0:
        # Kafka answers a fetch over quota at once, empty; session 0 makes the client start a new
        # fetch session, since the broker's never saw this round.
        ex.throttle_until = now + debt
        empty = FetchResponse(throttle_time_ms=round(debt * 1000))
        return AnswerBytes([response_frame(empty, ex.api_version, ex.client_corr)])
    delay = max(throttler.on_request(ex.api_key, len(ex.frame)), ex.throttle_until - now)  # and a guard's delay
    if delay > 0:
        ex.throttle_until = now + delay
        throttler.mute(delay)
    ex.on_response(_throttle_response)
    return None


def _throttle_response(ex: Exchange, ctx: StageContext) -> None:
    """Charge a Fetch response's bytes, and raise the response's throttle_time_ms to the proxy's delay."""
    assert ex.response is not None and ex.chunks is not None and ctx.throttler is not None
    now = ctx.clock()
    key, version, offset = ex.api_key, ex.api_version, ex.body_offset - 4  # chunks start after the correlation id
    if key == ApiKey.FETCH:
        ex.throttle_at_least(now + ctx.throttler.on_fetch_response(len(ex.response)))
    ms = round(max(0.0, ex.throttle_until - now) * 1000)
    if ms <= 0:
        return
    at = throttle_offset(key, version)
    if at is not None:
        ex.chunks = overwrite_int32(ex.chunks, offset + at, max(ms, read_throttle(ex.response, ex.body_offset, key,
                                                                                   version)))
    elif has_throttle_field(key, version):
        ex.chunks = rewrite_throttle_field(ex.chunks, offset, key, version, ms)


def release(ex: Exchange, ctx: StageContext) -> float:
    """How long to hold a ready response back (0: send it now, muting the client for any delay instead)."""
    left = ex.throttle_until - ctx.clock()
    if left <= 0:
        return 0.0
    ctx.log.debug("throttling API %d v%d for %.0f ms", ex.api_key, ex.api_version, left * 1000,
                  extra={"api": ctx.api_name(ex.api_key)})
    if client_throttles(ex.api_key, ex.api_version):
        if ctx.throttler is not None:
            ctx.throttler.mute(left)
        return 0.0
    return left
