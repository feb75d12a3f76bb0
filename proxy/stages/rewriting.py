"""Stage: names get the tenant's prefix on the way in and lose it on the way out; broker addresses are
rewritten to the proxy's (see :mod:`tenantry.proxy.rewrite`)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from tenantry.protocol import ProtocolError
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, Close, Outcome, Suspend
from tenantry.proxy.rewrite.hooks import Refusal
from tenantry.proxy.rewrite.rewriter import RequestContext, UnknownTopicIds
from tenantry.proxy.upstream import UpstreamError

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext


def rewrite(ex: Exchange, ctx: StageContext) -> Outcome | None:
    return _rewrite(ex, ctx, ids_looked_up=False)


def _rewrite(ex: Exchange, ctx: StageContext, ids_looked_up: bool) -> Outcome | None:
    assert ex.header is not None
    try:
        ex.parts, ex.rewrite = ctx.rewriter.request(ex.frame, ex.header, ids_looked_up=ids_looked_up,
                                                    scanned=ex.scanned, edits=ex.edits)
    except Refusal as refused:
        return Answer(refused.response)
    except UnknownTopicIds as unknown:
        return Suspend(_look_up(ex, ctx, unknown.ids))
    ex.on_response(_rewrite_response)
    return None


async def _look_up(ex: Exchange, ctx: StageContext, ids: set[uuid.UUID]) -> Outcome | None:
    """Ask the broker which topics the ids name, then rewrite: an id still unknown is not the tenant's."""
    try:
        await ctx.look_up_topic_ids(ids)
    except (UpstreamError, ProtocolError) as exc:
        return Close(f"cannot look up topic ids: {exc}")
    return _rewrite(ex, ctx, ids_looked_up=True)


def _rewrite_response(ex: Exchange, ctx: StageContext) -> None:
    """Raises Leak for a name the tenant does not own outside a filtered listing (the connection closes)."""
    assert ex.response is not None and ex.rewrite is not None
    addresses = ctx.addresses()
    ex.chunks = ctx.rewriter.response(ex.api_key, ex.api_version, ex.response, ex.body_offset, ex.rewrite, addresses)
    if addresses.seen:
        # A client may connect to a broker as soon as it reads this response: open its listener first.
        ex.new_brokers = ctx.learn_brokers(addresses.seen)
    if ex.rewrite.unverified_ids:
        ex.before_release = _verify_ids(ctx, ex.rewrite)


async def _verify_ids(ctx: StageContext, rewrite: RequestContext) -> None:
    """Topic ids in a response that the proxy has never seen are looked up: Leak if one is not the tenant's."""
    await ctx.look_up_topic_ids(rewrite.unverified_ids)
    ctx.rewriter.verify_ids(rewrite)
