"""Stage: the proxy's own connection to the broker is open and logged in when a request needs it.

It stands twice in the pipeline: before the guard rails, whose checks ask the broker, so that the
first request for a broker opens the connection (an idle login costs the broker nothing); and just
before forwarding, because the proxy may have begun re-authenticating to the broker (KIP-368) while
the request waited for a guard rail or a topic-id look-up, and nothing may go between its SASL requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Outcome, Suspend

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext


def ready(ex: Exchange, ctx: StageContext) -> Outcome | None:
    wait = ctx.broker_ready()
    return Suspend(wait) if wait is not None else None
