"""Stage: the request goes to the broker (the pipeline's last stage)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol.envelope import produce_acks
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Forward, Outcome

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

EXPECTS_RESPONSE, NO_RESPONSE = Forward(True), Forward(False)


def forward(ex: Exchange, ctx: StageContext) -> Outcome | None:
    assert ex.header is not None
    if ex.api_key == ApiKey.PRODUCE and produce_acks(ex.frame, ex.header.body_offset, ex.api_version) == 0:
        return NO_RESPONSE
    return EXPECTS_RESPONSE
