"""Stage: the records of a tenant's encrypted topics (see :mod:`tenantry.proxy.record_encryption`).

Two stage functions, one each side of the rewrite:

- :func:`seal` runs before it, on a Produce: it sees the tenant's own topic names (what the tenant's
  encryption globs name) and hands the rewrite the sealed records to splice in with the prefixed names.
  Records that cannot be sealed are never sent: the Produce is answered with an error for every partition
  (CORRUPT_MESSAGE for a malformed batch, UNKNOWN_SERVER_ERROR when the key store fails).
- :func:`open_fetched` runs after it, on a Fetch, so that its response hook runs first, on the broker's
  response as one buffer: a partition whose records cannot be opened gets CORRUPT_MESSAGE and no records.

Tenants without encryption topics pass both at the cost of an attribute test; the other topics of a tenant
that has some keep their zero-copy path on produce, and on fetch cost one scan of the response.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tenantry.protocol import ProtocolError, decode, scan, splice
from tenantry.protocol.envelope import produce_acks
from tenantry.protocol.messages import REQUESTS, RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.scanner import Ref
from tenantry.proxy.authorization.shapes import element_class, items_response, refused_item
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, AnswerBytes, Close, Outcome, Suspend
from tenantry.proxy.record_encryption import EncryptError, RecordCipher
from tenantry.proxy.stages import acts_on
from tenantry.proxy.traffic import PRODUCE_SCAN, tenant_topic_names
from tenantry.proxy.upstream import UpstreamError
from tenantry.tenants.envelope import DecryptError
from tenantry.tenants.registry import Tenant

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

CORRUPT_MESSAGE = 2
UNKNOWN_SERVER_ERROR = -1
_FETCH_SCAN = frozenset({"topicName", "topicId", "errorCode", "records"})


@acts_on(ApiKey.PRODUCE)
def seal(ex: Exchange, ctx: StageContext) -> Outcome | None:
    tenant = ctx.tenant()
    if tenant is None or not tenant.encryption.topics:
        return None
    assert ex.header is not None
    if ex.scanned is None:  # an earlier stage changed the frame (authorization left a refused topic out)
        ex.scanned = scan(REQUESTS[ex.api_key], ex.api_version, ex.frame, ex.header.body_offset, PRODUCE_SCAN)
    ids = ctx.rewriter.topic_ids
    unknown = {ref.value for ref in ex.scanned if ref.entity == "topicId" and ref.value is not None
               and ref.value.int and ids.name_of(ref.value) is None}
    if unknown:
        return Suspend(_look_up_then_seal(ex, ctx, tenant, unknown))
    return _seal(ex, ctx, tenant)


async def _look_up_then_seal(ex: Exchange, ctx: StageContext, tenant: Tenant, ids: set[uuid.UUID]) -> Outcome | None:
    try:
        await ctx.look_up_topic_ids(ids)  # still unknown afterwards: not the tenant's, and the rewrite swaps it out
    except (UpstreamError, ProtocolError) as exc:
        return Close(f"cannot look up topic ids: {exc}", ex.api_key)
    return _seal(ex, ctx, tenant)


def _seal(ex: Exchange, ctx: StageContext, tenant: Tenant) -> Outcome | None:
    assert ex.scanned is not None
    policy, name_of = tenant.encryption, tenant_topic_names(tenant.namespace, ctx.rewriter.topic_ids)
    cipher: RecordCipher | None = None
    topic: str | None = None
    edits: list[tuple[Ref, Any]] = []
    try:
        for ref in ex.scanned:
            entity = ref.entity
            if entity == "topicName":
                topic = ref.value
            elif entity == "topicId":
                topic = name_of(ref.value) if ref.value is not None else None
            elif entity == "records" and topic is not None and ref.value and policy.seals(topic):
                if cipher is None:
                    if ctx.envelopes is None:  # set-up refuses this; never write plaintext if it happens
                        raise EncryptError("the proxy has no encryption_key_store", malformed=False)
                    cipher = RecordCipher(ctx.envelopes, tenant.id)
                edits.append((ref, cipher.seal(topic, ref.value)))
    except EncryptError as exc:
        return _refuse(ex, ctx, tenant, topic, exc)
    if cipher is not None:
        ctx.meter.tenant.records_sealed += cipher.records
    ex.edits = edits
    return None


def _refuse(ex: Exchange, ctx: StageContext, tenant: Tenant, topic: str | None, exc: EncryptError) -> Outcome:
    ctx.meter.tenant.encryption_failures["seal"] += 1
    if ctx.denials.due(("seal", tenant.id, topic, exc.malformed), ctx.clock()):
        ctx.log.warning("records for topic %r of tenant %s not sealed, Produce refused: %s", topic, tenant.id, exc)
    assert ex.header is not None
    if produce_acks(ex.frame, ex.header.body_offset, ex.api_version) == 0:
        return AnswerBytes([])  # acks=0: the client reads no answer; nothing was written
    error = CORRUPT_MESSAGE if exc.malformed else UNKNOWN_SERVER_ERROR
    request = decode(REQUESTS[ex.api_key], ex.body, ex.api_version)
    cls = element_class(RESPONSES[ex.api_key], "responses")
    items = [refused_item(cls, topic_data, error) for topic_data in request.topic_data]  # type: ignore[attr-defined]
    for item in items:
        for partition in item.partition_responses:
            partition.error_message = f"record encryption: {exc}"
    return Answer(items_response(ex.api_key, "responses", items))


@acts_on(ApiKey.FETCH)
def open_fetched(ex: Exchange, ctx: StageContext) -> Outcome | None:
    tenant = ctx.tenant()
    if tenant is not None and tenant.encryption:
        ex.on_response(_open_response)
    return None


def _open_response(ex: Exchange, ctx: StageContext) -> None:
    """Open the records of the tenant's encrypted topics in the broker's response (its names still prefixed)."""
    tenant = ctx.tenant()
    assert ex.response is not None
    if tenant is None or not tenant.encryption:
        return
    policy, namespace = tenant.encryption, tenant.namespace
    ids = ctx.rewriter.topic_ids
    cipher: RecordCipher | None = None
    changes: list[tuple[Ref, Any]] = []
    topic: str | None = None
    error_code: Ref | None = None
    for ref in scan(RESPONSES[ex.api_key], ex.api_version, ex.response, ex.body_offset, _FETCH_SCAN):
        entity = ref.entity
        if entity == "topicName" or entity == "topicId":
            name = ref.value if entity == "topicName" else (ids.name_of(ref.value) if ref.value else None)
            topic = namespace.from_cluster(name) if name else None
        elif entity == "errorCode":
            error_code = ref
        elif entity == "records" and topic is not None and ref.value and policy.opens(topic):
            try:
                if cipher is None:
                    if ctx.envelopes is None:
                        raise DecryptError("the proxy has no encryption_key_store")
                    cipher = RecordCipher(ctx.envelopes, tenant.id)
                opened = cipher.open(topic, ref.value)
            except DecryptError as exc:
                assert error_code is not None
                changes += ((error_code, CORRUPT_MESSAGE), (ref, b""))
                ctx.meter.tenant.encryption_failures["open"] += 1
                if ctx.denials.due(("open", tenant.id, topic), ctx.clock()):
                    ctx.log.warning("records of topic %r of tenant %s cannot be opened, answered CORRUPT_MESSAGE: "
                                    "%s", topic, tenant.id, exc)
                continue
            if opened is not None:
                changes.append((ref, opened))
    if cipher is not None:
        ctx.meter.tenant.records_opened += cipher.records
    if changes:
        ex.response = memoryview(b"".join(splice(ex.response, changes, 0)))

