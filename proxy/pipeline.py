"""The request pipeline: the ordered stages every client request goes through, declared in one place.

A stage is a function ``stage(exchange, context) -> outcome``. It returns None to let the exchange go
on to the next stage, or one of:

- :class:`Answer` / :class:`AnswerBytes`: the proxy answers the request itself; later stages are skipped.
- :class:`Close`: the connection is closed (a protocol violation, a refused login, ...).
- :class:`Suspend`: the stage must wait (a broker connection opening, a guard-rail check, a topic-id
  look-up, a password check in a worker thread). Its coroutine runs to completion and returns what the
  stage would have returned; the exchange then resumes at the *next* stage. Requests behind it wait, in
  order. Nothing runs twice, so nothing is counted twice.
- :class:`Forward`: the request goes to the broker (the last stage).

Stages that want to see the response register a hook on the exchange (:meth:`Exchange.on_response`);
hooks run in reverse order, so the response passes back through the stages as a stack unwinds.

Stages act on the world only through a :class:`~tenantry.proxy.stage_context.StageContext`; none of
them imports the server or touches a transport, so each is unit-tested with a fake context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tenantry.protocol.messages import REQUESTS
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Outcome
from tenantry.proxy.stages import (
    acl_admin,
    admission,
    authorization,
    broker,
    encryption,
    fetch_sessions,
    forward,
    guard_rails,
    local_answers,
    login,
    metering,
    quotas,
    rewriting,
    tenant_views,
    topic_creation,
)

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext


Stage = Callable[[Exchange, "StageContext"], "Outcome | None"]

#: A tenant's requests, in order. Metering comes first so that every request counts, even refused ones.
TENANT_STAGES: tuple[Stage, ...] = (
    metering.count_request,
    local_answers.api_versions,
    login.sasl,  # SaslHandshake and SaslAuthenticate, at any time (KIP-368 re-authentication)
    admission.logged_in,
    admission.offered,  # the API and version are offered to tenants; parses the header
    metering.count_payload,
    fetch_sessions.owned,  # a Fetch names only fetch sessions its tenant opened
    local_answers.controllers,
    broker.ready,  # the first request for a broker opens the proxy's connection to it
    authorization.authorize,  # the tenant's ACLs, before any limit counts what they refuse
    topic_creation.metadata,  # Metadata before v4 creates no topic the tenant may not create
    guard_rails.check,
    quotas.charge,
    acl_admin.answer,  # the tenant's own ACLs: CreateAcls, DescribeAcls, DeleteAcls
    tenant_views.client_quotas,  # the tenant's quotas, as the proxy enforces them
    tenant_views.config_resources,  # the tenant's topics and groups
    encryption.seal,  # a Produce's records of encrypted topics, before the rewrite (the tenant's names)
    rewriting.rewrite,
    encryption.open_fetched,  # after the rewrite: its response hook runs first, on the broker's response
    broker.ready,  # not while the proxy re-authenticates to the broker (KIP-368)
    forward.forward,
)

#: Without tenants the proxy is transparent: it rewrites broker addresses and nothing else. No stage
#: here waits between the broker check and forwarding, so one check is enough.
TRANSPARENT_STAGES: tuple[Stage, ...] = (
    metering.count_request,
    local_answers.api_versions,
    local_answers.sasl_refusal,
    admission.offered,
    metering.count_payload,
    local_answers.controllers,
    rewriting.rewrite,
    broker.ready,
    forward.forward,
)

#: After SaslHandshake v0 the client sends bare SASL tokens (KIP-152) until it is logged in.
RAW_SASL_STAGES: tuple[Stage, ...] = (login.raw_token,)


def routes(stages: tuple[Stage, ...]) -> dict[int, tuple[Stage, ...]]:
    """For each API key, the stages of `stages` that act on it.

    A stage declared with :func:`~tenantry.proxy.stages.acts_on` is left out of the other APIs' routes,
    so a Produce does not pass through the ApiVersions or DescribeClientQuotas stages only to learn they
    have nothing to do: each pass is Python calls, on every request. Keys no schema knows are not here
    (see :func:`route`).
    """
    return {key: route(stages, key) for key in REQUESTS}


def route(stages: tuple[Stage, ...], api_key: int) -> tuple[Stage, ...]:
    return tuple(stage for stage in stages if api_key in getattr(stage, "api_keys", (api_key,)))


def advance(exchange: Exchange, context: StageContext, stages: tuple[Stage, ...], start: int) -> tuple[Outcome, int]:
    """Run `stages` from `start` until one decides; the outcome and the index of the stage that gave it."""
    for index in range(start, len(stages)):
        outcome = stages[index](exchange, context)
        if outcome is not None:
            return outcome, index
    raise AssertionError("the last stage must forward or answer every request")


TENANT_ROUTES = routes(TENANT_STAGES)
TRANSPARENT_ROUTES = routes(TRANSPARENT_STAGES)
