"""Stage: a Fetch may only name a fetch session its own tenant opened (see :mod:`..fetch_sessions`).

A Fetch with any other session id, live or not, and whatever its epoch (-1 would close the session),
is answered here with FETCH_SESSION_ID_NOT_FOUND, exactly as a broker answers an id it never gave,
and never reaches the broker. Its client then opens a new session, as after any eviction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol import ErrorCode
from tenantry.protocol.envelope import peek_int32
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.fetch_request import FetchRequest
from tenantry.protocol.messages.fetch_response import FetchResponse
from tenantry.proxy import test_switches
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, Outcome
from tenantry.proxy.stages import acts_on

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

SESSIONLESS = 0  # a full fetch that opens a new session, or uses none


@acts_on(ApiKey.FETCH)
def owned(ex: Exchange, ctx: StageContext) -> Outcome | None:
    if ex.api_key != ApiKey.FETCH:
        return None
    session_id = peek_int32(ex.body, FetchRequest, ex.api_version, "session_id")
    if session_id is None:  # before v7: no sessions
        return None
    ex.on_response(_remember_session)
    if session_id == SESSIONLESS or ctx.fetch_sessions.owned_by(session_id, ctx.meter.tenant_id):
        return None
    if test_switches.SKIP_OWNERSHIP_CHECKS:
        return None
    return Answer(FetchResponse(error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND, session_id=0))


def _remember_session(ex: Exchange, ctx: StageContext) -> None:
    """The session id a broker gave this tenant's connection belongs to this tenant from now on."""
    assert ex.response is not None
    body = ex.response[ex.body_offset:]
    session_id = peek_int32(body, FetchResponse, ex.api_version, "session_id")
    if session_id:
        ctx.fetch_sessions.opened(session_id, ctx.meter.tenant_id)
