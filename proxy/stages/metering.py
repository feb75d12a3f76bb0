"""Stage: count every request and response for the metrics (bytes, records, errors, latency)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Outcome

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext


def count_request(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """Count the request for its tenant (anonymous before login), whatever happens to it next."""
    ctx.meter.request(ex.api_key, len(ex.frame) + 4)
    return None


def count_payload(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """Count what needs the parsed header: the client id, and a Produce request's records."""
    assert ex.header is not None
    ctx.meter.client_id(ex.header.client_id, len(ex.frame) + 4)
    if ex.api_key == ApiKey.PRODUCE:
        ex.scanned = ctx.meter.produced(ex.api_version, ex.frame, ex.header.body_offset)
    ex.on_response(_count_errors)
    return None


def _count_errors(ex: Exchange, ctx: StageContext) -> None:
    """Every non-zero error code in the broker's response, as Kafka's ErrorsPerSec counts them."""
    assert ex.response is not None
    ctx.meter.errors(ex.api_key, ex.api_version, ex.response, ex.body_offset)
