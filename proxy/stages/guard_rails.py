"""Stage: a tenant's topic, partition and group limits, checked before the broker acts (see :mod:`..guard`).

A request that may create or change topics or groups waits while the guard checks it against the
tenant's use on the cluster. Refused items are answered here, or taken out of the request and their
results merged into the broker's response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tenantry.protocol import ProtocolError, decode, encode
from tenantry.protocol.messages import REQUESTS
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.guard import GROUP_APIS, TOPIC_APIS, merge_refused
from tenantry.proxy.outcomes import Answer, Close, Outcome, Suspend
from tenantry.proxy.stages import acts_on
from tenantry.proxy.upstream import UpstreamError
from tenantry.tenants.registry import Tenant

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

TOPIC_MUTATIONS = "topic_mutations"
WATCHED = TOPIC_APIS | GROUP_APIS


@acts_on(*WATCHED)
def check(ex: Exchange, ctx: StageContext) -> Outcome | None:
    if ex.api_key not in WATCHED:
        return None
    tenant = ctx.tenant()
    if tenant is None or not ctx.guard.applies(tenant.limits, ex.api_key):
        return None
    request = decode(REQUESTS[ex.api_key], ex.body, ex.api_version)
    if ctx.guard.settled(tenant, ex.api_key, request):
        return None
    return Suspend(_review(ex, ctx, tenant, request))


async def _review(ex: Exchange, ctx: StageContext, tenant: Tenant, request: Any) -> Outcome | None:
    key, version = ex.api_key, ex.api_version
    try:
        verdict = await ctx.guard.review(tenant, ctx.produce_rate(), ctx.broker(), key, version, request)
    except (UpstreamError, ProtocolError) as exc:
        return Close(f"cannot check the tenant's limits: {exc}", key)
    except Exception:  # a bug must cost this connection, never leave it waiting forever
        ctx.log.exception("checking API %d v%d of %s against its limits failed", key, version, tenant.id,
                          extra={"api": ctx.api_name(key)})
        return Close("internal error while checking the tenant's limits", key)
    if verdict.throttle > 0:
        stats = ctx.meter.tenant
        stats.throttle_seconds[TOPIC_MUTATIONS] += verdict.throttle
        stats.throttled[TOPIC_MUTATIONS] += 1
    ex.throttle_at_least(ctx.clock() + verdict.throttle)
    if verdict.answer is not None:
        return Answer(verdict.answer)
    assert verdict.request is not None and ex.header is not None
    ex.frame = memoryview(bytes(ex.frame[:ex.header.body_offset]) + encode(verdict.request, version))
    ex.refused, ex.settle = verdict.refused, verdict.settle
    ex.on_response(_settle)
    return None


def _settle(ex: Exchange, ctx: StageContext) -> None:
    """Tell the guard the broker has answered, and add the refused items' results to its response."""
    if ex.settle is not None:
        ex.settle()
    ctx.meter.refused(ex.api_key, len(ex.refused))
    if ex.refused:
        assert ex.chunks is not None
        ex.chunks = merge_refused(ex.api_key, ex.api_version, ex.chunks, ex.body_offset - 4, ex.refused)
