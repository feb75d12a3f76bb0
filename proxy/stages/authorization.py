"""Stage: the tenant's ACLs, for the users they apply to (tenants with ``authorization = "acls"``, admin
users excepted). Every other connection passes through at the cost of one attribute test.

Produce and Fetch are first checked on the names the scanner finds (no decode, no copy): only a request
with a refused topic is decoded and re-encoded without it. Fetch sessions (KIP-227) are turned off for
these users: a session lets a client go on fetching partitions it named once, after an ACL that allowed it
is gone; a sessionless Fetch names every partition every time, and each is checked.
"""

from __future__ import annotations

import functools
import struct
import uuid
from typing import TYPE_CHECKING, Any

from tenantry.protocol import ProtocolError, encode
from tenantry.protocol.codec import decode_from
from tenantry.protocol.messages import REQUESTS
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.scanner import scan
from tenantry.proxy.authorization import group_rules, topic_rules  # noqa: F401  (they register their rules)
from tenantry.proxy.authorization.check import Check, ConnectionAcls
from tenantry.proxy.authorization.rules import CLUSTER, RULES, TOPIC, TXN, NameOf, Verdict
from tenantry.proxy.authorization.shapes import edit_response
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, AnswerBytes, Close, Outcome, Suspend
from tenantry.proxy.rewrite.entities import map_entities
from tenantry.proxy.rewrite.rewriter import TENANT_REQUEST
from tenantry.proxy.stages import acts_on
from tenantry.proxy.upstream import UpstreamError
from tenantry.tenants.acls import CLUSTER_NAME, Operation
from tenantry.tenants.registry import Tenant

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

#: What the hot APIs are scanned for: every field the tenant rewrite changes too, so the rewriting stage
#: takes these refs (ex.scanned) instead of walking the request again.
NAMES = TENANT_REQUEST
#: The hot APIs, checked on scanned names first: the operation each needs on its topics.
HOT: dict[int, Operation] = {ApiKey.PRODUCE: Operation.WRITE, ApiKey.FETCH: Operation.READ}
_FETCH = int(ApiKey.FETCH)  # (an enum member's look-up costs more than an int's, on every request)
_SESSION = struct.Struct(">ii")
_SESSIONLESS = (0, -1)  # session id 0, epoch -1 (FINAL_EPOCH): a full fetch, no session
_LOGGED_DENIALS = 5


@acts_on(*RULES)
def authorize(ex: Exchange, ctx: StageContext) -> Outcome | None:
    tenant = ctx.tenant()
    if tenant is None or tenant.authorization == "open":  # one test, for every request of an open tenant
        return None
    view = ctx.acl_view
    if view is None or view.acls is not tenant.acls:
        auth = ctx.auth
        assert auth is not None and auth.principal is not None
        view = ctx.acl_view = ConnectionAcls(tenant, auth.principal.name, client_host(ctx.peer))
    if not view.checked:
        return None
    operation = HOT.get(ex.api_key)
    if operation is not None:
        if ex.api_key == _FETCH:
            _sessionless(ex)
        if _allowed_by_scan(ex, ctx, tenant, view, operation):
            return None
    check = Check(tenant.acls, view.user, view.host)
    name_of = _names(ctx, tenant)
    request, trailing = _decode(ex)
    unknown = _unknown_ids(request, ex.api_version, name_of)
    if unknown:
        return Suspend(_look_up_then_check(ex, ctx, (request, trailing), check, name_of, unknown))
    return _decide(ex, ctx, (request, trailing), check, name_of)


def may_create_topics(ctx: StageContext, tenant: Tenant, names: list[str]) -> bool:
    """Whether the logged-in user may create these topics: it is not checked against ACLs, or it has CREATE
    on the cluster or on each topic (what a broker asks before Metadata creates one)."""
    auth = ctx.auth
    if auth is None or auth.principal is None or not tenant.checks_acls_of(auth.principal.name):
        return True
    user, host, acls = auth.principal.name, client_host(ctx.peer), tenant.acls
    return acls.authorize(user, host, Operation.CREATE, CLUSTER, CLUSTER_NAME) or all(
        acls.authorize(user, host, Operation.CREATE, TOPIC, name) for name in names)


def _decode(ex: Exchange) -> tuple[Any, bytes]:
    """The request, and any bytes after its known fields: librdkafka sends three after an all-topics
    Metadata v13, and brokers ignore them; they are kept if the request is encoded again."""
    assert ex.header is not None
    cls = REQUESTS[ex.api_key]
    request, end = decode_from(cls, ex.frame, ex.api_version, ex.api_version in cls.FLEXIBLE_VERSIONS,
                               ex.header.body_offset)
    return request, bytes(ex.frame[end:])


@functools.lru_cache(maxsize=4096)
def client_host(peer: str) -> str:
    """The address of a "host:port" peer, as ACL host entries name it (cached: a connection asks per request)."""
    host, colon, _ = peer.rpartition(":")
    return host if colon else peer


def _names(ctx: StageContext, tenant: Tenant) -> NameOf:
    def name_of(topic_id: uuid.UUID) -> str | None:
        cluster = ctx.rewriter.topic_ids.name_of(topic_id)
        return cluster[len(tenant.prefix):] if cluster and cluster.startswith(tenant.prefix) else None
    return name_of


def _allowed_by_scan(ex: Exchange, ctx: StageContext, tenant: Tenant, view: ConnectionAcls,
                     operation: Operation) -> bool:
    """True when every topic (and transactional id) the request names is allowed: the common case, decided
    on the scanner's refs, each name already allowed a set look-up. False sends the request to the full
    rule (which answers the refusals)."""
    assert ex.header is not None
    if ex.scanned is None:
        ex.scanned = scan(REQUESTS[ex.api_key], ex.api_version, ex.frame, ex.header.body_offset, NAMES)
    allowed = view.topics[operation]
    for ref in ex.scanned:
        entity, value = ref.entity, ref.value
        if entity == "topicName":
            if value is None or value in allowed or view.allows(operation, TOPIC, value):
                continue
            return False
        if entity == "topicId":
            name = _names(ctx, tenant)(value)
            if name is not None and (name in allowed or view.allows(operation, TOPIC, name)):
                continue
            return False
        if entity == "transactionalId" and value is not None and not view.allows(Operation.WRITE, TXN, value):
            return False
    return True


def _sessionless(ex: Exchange) -> None:
    """Turn a Fetch's session off (v7+), unless the client asked for none."""
    version = ex.api_version
    if version < 7:
        return
    assert ex.header is not None
    at = ex.header.body_offset + (17 if version < 15 else 13)  # after replica_id (to v14), max_wait .. isolation
    if _SESSION.unpack_from(ex.frame, at) != _SESSIONLESS:
        frame = bytearray(ex.frame)
        _SESSION.pack_into(frame, at, *_SESSIONLESS)
        ex.frame = memoryview(frame)
        ex.scanned = None


def _unknown_ids(request: Any, version: int, name_of: NameOf) -> set[uuid.UUID]:
    """Topic ids the proxy has not yet seen named: they must be looked up before the rule can name them."""
    unknown: set[uuid.UUID] = set()

    def collect(entity: str, value: Any, _: object) -> Any:
        if value is not None and value.int and name_of(value) is None:
            unknown.add(value)
        return value
    map_entities(request, version, frozenset({"topicId"}), collect)
    return unknown


async def _look_up_then_check(ex: Exchange, ctx: StageContext, request: tuple[Any, bytes], check: Check,
                              name_of: NameOf, ids: set[uuid.UUID]) -> Outcome | None:
    try:
        await ctx.look_up_topic_ids(ids)  # an id still unknown afterwards is not the tenant's: the rewrite swaps it
    except (UpstreamError, ProtocolError) as exc:
        return Close(f"cannot look up topic ids: {exc}", ex.api_key)
    return _decide(ex, ctx, request, check, name_of)


def _decide(ex: Exchange, ctx: StageContext, decoded: tuple[Any, bytes], check: Check,
            name_of: NameOf) -> Outcome | None:
    request, trailing = decoded
    verdict = RULES[ex.api_key](request, ex.api_version, check, name_of)
    if check.denied:
        _report(ex, ctx, check)
    if verdict is None:
        return None
    if verdict.answer is not None:
        if ex.api_key == ApiKey.PRODUCE and request.acks == 0:
            return AnswerBytes([])  # acks=0: the client reads no answer
        return Answer(verdict.answer)
    if verdict.request is not None:
        assert ex.header is not None
        ex.frame = memoryview(bytes(ex.frame[:ex.header.body_offset]) + encode(verdict.request, ex.api_version)
                              + trailing)
        ex.scanned = None  # the Produce scan's refs pointed into the old frame
    if verdict.refused or verdict.response_filter is not None:
        ex.on_response(lambda ex, ctx: _finish(ex, verdict))
    return None


def _finish(ex: Exchange, verdict: Verdict) -> None:
    """Filter the response and add the refused items' errors to it (after the rewrite stripped its names)."""
    assert ex.chunks is not None

    def edit(response: Any) -> None:
        if verdict.response_filter is not None:
            verdict.response_filter(response, ex.api_version)
        if verdict.refused:
            getattr(response, verdict.into).extend(verdict.refused)
    ex.chunks = edit_response(ex.api_key, ex.api_version, ex.chunks, ex.body_offset - 4, edit)


def _report(ex: Exchange, ctx: StageContext, check: Check) -> None:
    api = ctx.api_name(ex.api_key)
    failures = ctx.meter.tenant.authorization_failures
    for _, resource_type, _ in check.denied:
        failures[(api, resource_type.name)] += 1
    if not ctx.denials.due((check.user, ex.api_key, check.denied[0]), ctx.clock()):
        return
    shown = ", ".join(f"{op.name} on {rt.name} {name!r}" for op, rt, name in check.denied[:_LOGGED_DENIALS])
    more = f" and {len(check.denied) - _LOGGED_DENIALS} more" if len(check.denied) > _LOGGED_DENIALS else ""
    ctx.log.info("denied %s to user %s from %s: %s%s", api, check.user, check.host, shown, more,
                 extra={"api": api})
