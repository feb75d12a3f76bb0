"""Stage: SASL at the proxy, then admission of the login against its tenant's connection limits.

:class:`~tenantry.proxy.client_auth.ClientAuth` holds the SASL state machine; this stage drives it for
one connection. Tokens are checked in a worker thread (PLAIN's scrypt takes ~50 ms, which a flood of
logins would otherwise take from every other connection), a failed login is answered only after a
delay (guessing passwords costs time), and a successful one is counted against the tenant's
max_connections and connections_per_sec before it is answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol import ErrorCode, decode
from tenantry.protocol.headers import parse_request_header
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.sasl_authenticate_request import SaslAuthenticateRequest
from tenantry.protocol.messages.sasl_authenticate_response import SaslAuthenticateResponse
from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest
from tenantry.protocol.messages.sasl_handshake_response import SaslHandshakeResponse
from tenantry.protocol.primitives import INT32
from tenantry.protocol.schema import Versions
from tenantry.proxy.client_auth import AUTHENTICATED, ClientAuth, IllegalSaslState
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, AnswerBytes, Close, Outcome, Suspend
from tenantry.proxy.stages import acts_on
from tenantry.tenants.auth import AuthenticationFailed
from tenantry.tenants.quotas import CONNECTIONS
from tenantry.tenants.registry import is_probe_user

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

SASL_VERSIONS: dict[int, Versions] = {ApiKey.SASL_HANDSHAKE: Versions(0, 1), ApiKey.SASL_AUTHENTICATE: Versions(0, 2)}
LOGIN_FAILED = "login failed"


@acts_on(ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE)
def sasl(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """SaslHandshake and SaslAuthenticate, for the first login and for re-authentication (KIP-368)."""
    versions = SASL_VERSIONS.get(ex.api_key)
    if versions is None:
        return None
    if ex.api_version not in versions:
        return Close(f"SASL API {ex.api_key} v{ex.api_version} is not supported", ex.api_key)
    ex.header = parse_request_header(ex.frame)
    if ex.api_key == ApiKey.SASL_HANDSHAKE:
        return _handshake(ex, _auth(ctx), decode(SaslHandshakeRequest, ex.body, ex.api_version).mechanism)
    token = bytes(decode(SaslAuthenticateRequest, ex.body, ex.api_version).auth_bytes)
    return Suspend(_authenticate(ctx, token))


def raw_token(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """A bare SASL token (after SaslHandshake v0): answered with a bare token, failures with a close."""
    return Suspend(_authenticate_raw(ctx, bytes(ex.frame)))


def _auth(ctx: StageContext) -> ClientAuth:
    assert ctx.auth is not None
    return ctx.auth


def _handshake(ex: Exchange, auth: ClientAuth, mechanism: str) -> Outcome:
    mechanisms = list(auth.mechanisms)
    try:
        accepted = auth.handshake(mechanism)
    except IllegalSaslState as exc:
        return Answer(SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=mechanisms),
                      drain=f"SASL: {exc}")
    if not accepted:
        return Answer(SaslHandshakeResponse(error_code=ErrorCode.UNSUPPORTED_SASL_MECHANISM, mechanisms=mechanisms),
                      drain=f"SASL mechanism {mechanism!r} is not enabled")
    auth.raw_tokens = ex.api_version == 0  # KIP-152: v0 is followed by bare tokens
    return Answer(SaslHandshakeResponse(error_code=0, mechanisms=mechanisms))


async def _check(ctx: StageContext, token: bytes) -> bytes | Exception:
    """The server's SASL answer, or why there is none, computed in a worker thread."""
    try:
        return await ctx.in_thread(_auth(ctx).authenticate, token)
    except Exception as exc:
        return exc


async def _authenticate(ctx: StageContext, token: bytes) -> Outcome | None:
    auth = _auth(ctx)
    first_login = not auth.authenticated
    result = await _check(ctx, token)
    if isinstance(result, IllegalSaslState):
        return Answer(SaslAuthenticateResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, error_message=str(result)),
                      drain=f"SASL: {result}")
    _count(ctx, result)
    if isinstance(result, AuthenticationFailed):
        return await _fail(ctx, Answer(SaslAuthenticateResponse(
            error_code=ErrorCode.SASL_AUTHENTICATION_FAILED, error_message=str(result)), drain=LOGIN_FAILED))
    if isinstance(result, Exception):
        return _broken(ctx, result)
    success = Answer(SaslAuthenticateResponse(error_code=0, auth_bytes=result,
                                              session_lifetime_ms=auth.session_lifetime_ms()))
    if first_login and auth.authenticated:
        return await admit(ctx) or success
    if auth.state == AUTHENTICATED and auth.principal is not None:
        ctx.log.info("%s re-authenticated as %s", ctx.peer, auth.principal.name)
    return success


async def _authenticate_raw(ctx: StageContext, token: bytes) -> Outcome | None:
    auth = _auth(ctx)
    result = await _check(ctx, token)
    _count(ctx, result)
    if isinstance(result, (AuthenticationFailed, IllegalSaslState)):
        return await _fail(ctx, AnswerBytes([], drain=LOGIN_FAILED))  # v0 has no error response: a close
    if isinstance(result, Exception):
        return _broken(ctx, result)
    answer = AnswerBytes([INT32.pack(len(result)) + result])
    if auth.authenticated:
        auth.raw_tokens = False
        return await admit(ctx) or answer
    return answer


async def admit(ctx: StageContext) -> Outcome | None:
    """Count a login against its tenant's connection limits: None to answer it (after any wait), or a Close.

    A refused connection is closed without an answer: clients treat that as a transient failure and
    reconnect with backoff, whereas a SASL error would be fatal to them.
    """
    principal = _auth(ctx).principal
    assert principal is not None
    if is_probe_user(principal.name):  # the probe watches the tenant, never takes from its quotas or limits
        ctx.logged_in()
        return None
    quotas = ctx.quotas
    meters = quotas.for_tenant(principal.tenant)
    stats = ctx.meter.stats.tenant(principal.tenant.id)
    refusal = meters.open_connection(principal.name)
    if refusal is not None:
        stats.connections_refused["max_connections"] += 1
        ctx.log.warning("refused a connection of %s (tenant %s) from %s: %s", principal.name, principal.tenant.id,
                        ctx.peer, refusal)
        return Close(f"connection limit: {refusal}")
    ctx.start_quotas(meters, principal.name, stats)
    wait = meters.record(CONNECTIONS, principal.name, 1)
    if wait > quotas.max_delay:
        stats.connections_refused["connections_per_sec"] += 1
        ctx.log.warning("refused a connection of %s (tenant %s) from %s: connections_per_sec exceeded by %.1f s",
                        principal.name, principal.tenant.id, ctx.peer, wait)
        return Close("connection rate exceeded")
    if wait > 0:
        stats.throttle_seconds[CONNECTIONS] += wait
        stats.throttled[CONNECTIONS] += 1
        await ctx.sleep(wait)
    if not ctx.closed:
        ctx.logged_in()
    return None


def _count(ctx: StageContext, result: bytes | Exception) -> None:
    """Count a finished SASL exchange (or a failed step) by mechanism, under the user's tenant if known."""
    auth = _auth(ctx)
    if isinstance(result, bytes) and auth.state != AUTHENTICATED:
        return  # a SCRAM round in the middle of the exchange
    outcome = "success" if isinstance(result, bytes) else "failure"
    tenant_id = ""
    if auth.principal is not None:
        tenant_id = auth.principal.tenant.id
    elif auth.claimed_user and (found := ctx.registry().lookup(auth.claimed_user)):
        tenant_id = found[0].id
    ctx.meter.stats.tenant(tenant_id).authentications[(auth.mechanism, outcome)] += 1


def _broken(ctx: StageContext, exc: Exception) -> Outcome:
    ctx.log.error("checking a SASL token from %s failed unexpectedly: %r", ctx.peer, exc)
    return Close("internal error during login")


async def _fail(ctx: StageContext, answer: Outcome) -> Outcome:
    """Answer a failed login only after a delay, then close: guessing passwords costs time."""
    refusal = _auth(ctx).refusal
    ctx.log.info("failed login from %s%s", ctx.peer, f": {refusal}" if refusal else "")
    await ctx.sleep(ctx.config.auth_failure_delay_ms / 1000)
    return answer
