"""The login stage: SASL at the proxy and admission against the tenant's connection limits (fake context)."""

from __future__ import annotations

from tenantry.protocol import ErrorCode
from tenantry.protocol.messages.metadata_request import MetadataRequest
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, AnswerBytes, Close, Suspend
from tenantry.proxy.stages import admission, login
from tests.unit.pipeline.fakes import FakeContext, exchange, outcome_of, registry

PLAIN_ALICE = b"\0alice\0secret"


async def log_in(ctx: FakeContext, token: bytes = PLAIN_ALICE, version: int = 1):
    assert isinstance(login.sasl(exchange(SaslHandshakeRequest(mechanism="PLAIN"), version), ctx), Answer)
    if version == 0:
        return await outcome_of(login.raw_token(Exchange(memoryview(token), 36, 0, -1, raw=True), ctx))
    return await outcome_of(login.sasl(exchange(SaslAuthenticateRequest(auth_bytes=token), 2), ctx))


async def test_a_good_password_is_answered_and_the_connection_logs_in_once():
    ctx = FakeContext(registry())
    answer = await log_in(ctx)
    assert isinstance(answer, Answer) and answer.response.error_code == 0 and answer.drain is None
    assert ctx.logins == 1 and ctx.throttler is not None
    assert ctx.stats.tenant("acme").authentications[("PLAIN", "success")] == 1


async def test_a_wrong_password_is_answered_after_the_delay_then_the_connection_drains():
    ctx = FakeContext(registry())
    answer = await log_in(ctx, b"\0alice\0guess")
    assert isinstance(answer, Answer) and answer.response.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert answer.drain == "login failed"
    assert ctx.slept == [ctx.config.auth_failure_delay_ms / 1000] and ctx.logins == 0


async def test_an_unknown_user_fails_exactly_like_a_wrong_password():
    ctx = FakeContext(registry())
    answer = await log_in(ctx, b"\0mallory\0secret")
    assert isinstance(answer, Answer) and answer.response.error_code == ErrorCode.SASL_AUTHENTICATION_FAILED
    assert ctx.slept == [ctx.config.auth_failure_delay_ms / 1000]


def test_a_mechanism_not_enabled_is_refused_and_drains():
    ctx = FakeContext(registry())
    answer = login.sasl(exchange(SaslHandshakeRequest(mechanism="GSSAPI"), 1), ctx)
    assert isinstance(answer, Answer) and answer.response.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM
    assert answer.drain is not None


def test_an_unsupported_sasl_version_closes():
    ctx = FakeContext(registry())
    assert isinstance(login.sasl(exchange(SaslHandshakeRequest(mechanism="PLAIN"), 1), ctx), Answer)
    outcome = login.sasl(exchange(SaslAuthenticateRequest(auth_bytes=b""), 3), ctx)
    assert isinstance(outcome, Close)


async def test_handshake_v0_is_followed_by_a_bare_token_answered_bare():
    ctx = FakeContext(registry())
    answer = await log_in(ctx, version=0)
    assert isinstance(answer, AnswerBytes) and answer.chunks == [b"\0\0\0\0"]  # PLAIN's empty answer, size-prefixed
    assert ctx.auth is not None and not ctx.auth.raw_tokens and ctx.logins == 1


async def test_a_bad_bare_token_closes_after_the_delay_without_an_answer():
    ctx = FakeContext(registry())
    answer = await log_in(ctx, b"\0alice\0guess", version=0)
    assert isinstance(answer, AnswerBytes) and answer.chunks == [] and answer.drain == "login failed"
    assert ctx.slept == [ctx.config.auth_failure_delay_ms / 1000]


async def test_a_login_over_max_connections_is_closed_without_an_answer():
    ctx = FakeContext(registry(quotas={"max_connections": 1}))
    ctx.quotas.for_tenant(ctx.registry().tenants["acme"]).open_connection("alice")  # another connection
    outcome = await log_in(ctx)
    assert isinstance(outcome, Close) and "connection limit" in outcome.reason and ctx.logins == 0


async def test_a_login_over_the_connection_rate_waits_before_it_is_answered():
    ctx = FakeContext(registry(quotas={"connections_per_sec": 1}))
    meters = ctx.quotas.for_tenant(ctx.registry().tenants["acme"])
    meters.record("connections", "alice", 1)  # the bucket's one token is gone
    answer = await log_in(ctx)
    assert isinstance(answer, Answer) and answer.response.error_code == 0
    assert len(ctx.slept) == 1 and 0 < ctx.slept[0] <= 1.0


def test_requests_are_closed_until_login():
    ctx = FakeContext(registry())
    assert isinstance(admission.logged_in(exchange(MetadataRequest(topics=[]), 12), ctx), Close)


async def test_after_login_requests_go_on():
    ctx = FakeContext(registry())
    await log_in(ctx)
    assert admission.logged_in(exchange(MetadataRequest(topics=[]), 12), ctx) is None


def test_sasl_authenticate_suspends_while_the_token_is_checked():
    ctx = FakeContext(registry())
    login.sasl(exchange(SaslHandshakeRequest(mechanism="PLAIN"), 1), ctx)
    outcome = login.sasl(exchange(SaslAuthenticateRequest(auth_bytes=PLAIN_ALICE), 2), ctx)
    assert isinstance(outcome, Suspend)
    outcome.until.close()


async def test_the_probe_user_takes_nothing_from_its_tenants_quotas_or_connection_limits():
    from benchmarks.inprocess import acme
    from tenantry.protocol.messages.metadata_request import MetadataRequest
    from tenantry.proxy.stages import admission, quotas
    from tenantry.tenants.credentials import create_credential
    from tenantry.tenants.registry import User

    tenants = acme(quotas={"requests_per_sec": 1, "max_connections": 1, "connections_per_sec": 1})
    probe = User("tenantry:probe:acme", {"PLAIN": create_credential("PLAIN", "probe-secret")})
    with_probe = tenants.with_users({"acme": probe})
    book = FakeContext(with_probe).quotas  # one proxy: every connection meets the same meters
    for _ in range(3):  # more connections than max_connections, faster than connections_per_sec
        ctx = FakeContext(with_probe)
        ctx.quotas = book
        answer = await log_in(ctx, b"\0tenantry:probe:acme\0probe-secret")
        assert answer.response.error_code == 0 and ctx.logins == 1 and ctx.throttler is None
        for corr in range(5):  # more requests than requests_per_sec: none charged, none throttled
            ex = exchange(MetadataRequest(topics=[]), 12, corr=corr)
            assert admission.offered(ex, ctx) is None and quotas.charge(ex, ctx) is None
            assert ex.throttle_until == 0
    meters = book.for_tenant(with_probe.tenants["acme"])
    assert meters.connections == 0 and meters.used["requests"] == 0
    alice = FakeContext(with_probe)
    alice.quotas = book
    assert (await log_in(alice)).response.error_code == 0 and alice.throttler is not None  # the tenant's slot
