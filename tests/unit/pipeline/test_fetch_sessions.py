"""Fetch sessions belong to the tenant that opened them (fake context, no broker)."""

from __future__ import annotations

from tenantry.protocol import ErrorCode
from tenantry.protocol.messages.fetch_request import FetchRequest
from tenantry.protocol.messages.fetch_response import FetchResponse
from tenantry.proxy.fetch_sessions import FetchSessionOwners
from tenantry.proxy.outcomes import Answer
from tenantry.proxy.stages import admission, fetch_sessions, rewriting
from tests.unit.pipeline.fakes import FakeContext, exchange, registry
from tests.unit.pipeline.test_login_stage import log_in
from tests.unit.pipeline.test_stages import respond


async def logged_in() -> FakeContext:
    ctx = FakeContext(registry())
    await log_in(ctx)
    ctx.meter.logged_in("acme", lambda _: None)
    return ctx


def fetch(session_id: int, epoch: int, version: int = 13):
    return exchange(FetchRequest(max_wait_ms=100, session_id=session_id, session_epoch=epoch), version)


async def test_a_session_the_broker_gave_this_tenant_is_usable_afterwards():
    ctx = await logged_in()
    opening = fetch(0, 0)
    admission.offered(opening, ctx)
    assert fetch_sessions.owned(opening, ctx) is None
    rewriting.rewrite(opening, ctx)
    respond(opening, ctx, FetchResponse(session_id=1234))
    later = fetch(1234, 1)
    admission.offered(later, ctx)
    assert fetch_sessions.owned(later, ctx) is None


async def test_another_tenants_session_is_not_found_whatever_the_epoch():
    ctx = await logged_in()
    ctx.fetch_sessions.opened(1234, "globex")
    for epoch in (1, 7, -1):  # reading, advancing and closing are all refused the same way
        ex = fetch(1234, epoch)
        admission.offered(ex, ctx)
        answer = fetch_sessions.owned(ex, ctx)
        assert isinstance(answer, Answer)
        assert answer.response.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
        assert answer.response.session_id == 0 and answer.response.responses == []


async def test_a_live_foreign_id_and_a_random_id_get_the_same_answer():
    ctx = await logged_in()
    ctx.fetch_sessions.opened(1234, "globex")
    answers = []
    for session_id in (1234, 98765):
        ex = fetch(session_id, 3)
        admission.offered(ex, ctx)
        answers.append(fetch_sessions.owned(ex, ctx))
    assert answers[0] == answers[1]


async def test_fetches_before_sessions_existed_pass():
    ctx = await logged_in()
    ex = exchange(FetchRequest(max_wait_ms=100), 6)
    admission.offered(ex, ctx)
    assert fetch_sessions.owned(ex, ctx) is None


def test_the_owner_table_is_bounded_and_forgets_the_oldest():
    owners = FetchSessionOwners(limit=2)
    owners.opened(1, "a")
    owners.opened(2, "b")
    owners.opened(1, "a")  # used again: now the newest
    owners.opened(3, "c")
    assert owners.owned_by(1, "a") and not owners.owned_by(2, "b") and owners.owned_by(3, "c")
    assert len(owners) == 2
