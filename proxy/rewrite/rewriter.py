"""Per-connection rewriting of requests and responses: broker addresses always, names for a tenant.

Hot path: the scanner finds the wanted fields and the splicer replaces them; record batches and
everything else pass through as slices. Cold path (APIs in :mod:`.special`): decode, restructure,
apply the same entity rules with :func:`map_entities`, encode.

Names: the tenant's name N travels as prefix+N. In responses a name the tenant does not own can only
appear in a listing, which the special handlers filter; anywhere else it means something is wrong,
so the response is dropped and the connection closed rather than leak it (:class:`Leak`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tenantry.protocol import decode, encode, scan, splice
from tenantry.protocol.codec import decode_from
from tenantry.protocol.headers import RequestHeader
from tenantry.protocol.layout import carries_entity
from tenantry.protocol.messages import REQUESTS, RESPONSES
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.primitives import INT16
from tenantry.protocol.scanner import Chunk, Ref
from tenantry.protocol.schema import ZERO_UUID, Message, Struct
from tenantry.proxy import test_switches
from tenantry.proxy.rewrite import special  # noqa: F401  (registers the typed hooks)
from tenantry.proxy.rewrite.entities import map_entities
from tenantry.proxy.rewrite.hooks import REQUEST_HOOKS, RESPONSE_HOOKS
from tenantry.proxy.rewrite.policy import ANSWERED_BY_PROXY
from tenantry.proxy.rewrite.topic_ids import TopicIds
from tenantry.tenants.naming import Namespace

NAMES = frozenset({"topicName", "groupId", "transactionalId"})
ADDRESSES = frozenset({"addressNodeId", "addressHost", "addressPort"})
TENANT_REQUEST = NAMES | {"topicId"}
TENANT_RESPONSE = NAMES | {"topicId", "errorMessage"}


class UnknownTopicIds(Exception):
    """The request names topic ids the cache has never seen: look them up, then rewrite again."""

    def __init__(self, ids: set[uuid.UUID]) -> None:
        super().__init__(f"{len(ids)} topic ids to look up")
        self.ids = ids


class Leak(Exception):
    """A response named something the tenant does not own outside a filtered listing."""


@dataclass
class RequestContext:
    """What a request's rewriting must remember for its response."""

    fake_ids: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # swapped-in id -> client's id
    unknown_ids: set[uuid.UUID] = field(default_factory=set)  # never seen: the caller may look them up
    unverified_ids: set[uuid.UUID] = field(default_factory=set)  # in the response, never seen: look them up
    ids_looked_up: bool = False
    listing: bool = False  # the request asked for "everything": filter the response
    protocol_type: str | None = None  # a classic group's protocol type ("consumer" bytes are rewritten)
    regex: tuple[str, str] | None = None  # a KIP-848 regex as the broker got it, and as the tenant wrote it
    denied: list[Any] = field(default_factory=list)  # results for items kept from the broker, added to its answer


@dataclass
class Addresses:
    """How broker addresses are rewritten, and which ones a response named."""

    advertised_host: str
    port_for: Callable[[int], int]
    seen: list[tuple[int, str, int]] = field(default_factory=list)
    host_for: Callable[[int], str] | None = None  # each broker's own name (SNI routing); else advertised_host

    def host(self, node: int) -> str:
        return self.host_for(node) if self.host_for is not None else self.advertised_host


class Rewriter:
    def __init__(self, namespace: Namespace | None, topic_ids: TopicIds, tenant_id: str | None = None,
                 allow_auto_create: bool = False) -> None:
        self.ns = namespace
        self.topic_ids = topic_ids
        self.tenant_id = tenant_id
        self.allow_auto_create = allow_auto_create
        self.group_protocols: dict[str, str | None] = {}  # cluster group id -> protocol type
        self._wanted_in_responses = (TENANT_RESPONSE | ADDRESSES) if namespace is not None else ADDRESSES
        self._headers: dict[tuple[bool, bytes], bytes] = {}  # (JoinGroup?, header after the API version) -> rewritten

    # -- requests ---------------------------------------------------------------------------------
    def request(self, frame: memoryview, header: RequestHeader, ids_looked_up: bool = False,
                scanned: list[Ref] | None = None, edits: Sequence[tuple[Ref, Any]] = ()) -> tuple[list[Chunk],
                                                                                                   RequestContext]:
        """The frame (without size prefix) to send upstream; its correlation id is renumbered later.

        `scanned`: refs an earlier stage found in this frame, for a superset of TENANT_REQUEST (then the
        request is not walked again); `edits`: new values for some of them (sealed records), spliced in too.

        Raises UnknownTopicIds when the request names ids never seen, unless they were just looked up
        (then an id still unknown does not exist, or is not the tenant's: it is swapped out).
        """
        ctx = RequestContext(ids_looked_up=ids_looked_up)
        if self.ns is None:
            return [frame], ctx
        key, version = header.api_key, header.api_version
        if key in ANSWERED_BY_PROXY:  # its stage must have answered: the broker's answer is every tenant's
            raise RuntimeError(f"API {key} is answered by the proxy and never forwarded for a tenant")
        head = self._header(frame, header)
        handler = REQUEST_HOOKS.get(key)
        if handler is not None:
            assert not edits, "edits are spliced into scanned requests only"
            cls = REQUESTS[key]
            # Brokers ignore bytes after the known fields, and some clients send them (librdkafka's
            # all-topics Metadata v13 has three): keep them, unread, after the rewritten fields.
            message, end = decode_from(cls, frame, version, version in cls.FLEXIBLE_VERSIONS, header.body_offset)
            map_entities(message, version, TENANT_REQUEST, lambda e, v, s: self._inbound(e, v, ctx))
            self._raise_unknown(ctx)
            handler(self, message, version, ctx)  # sees cluster names: it fixes what the rule cannot
            return [head, encode(message, version), frame[end:]], ctx
        refs = scanned if scanned is not None else scan(REQUESTS[key], version, frame, header.body_offset,
                                                        TENANT_REQUEST)
        changes = [(r, new) for r in refs
                   if r.entity in TENANT_REQUEST and (new := self._inbound(r.entity, r.value, ctx)) != r.value]
        changes += edits
        self._raise_unknown(ctx)
        return [head, *splice(frame, changes, header.body_offset)], ctx

    @staticmethod
    def _raise_unknown(ctx: RequestContext) -> None:
        if ctx.unknown_ids and not ctx.ids_looked_up:
            raise UnknownTopicIds(ctx.unknown_ids)

    def _header(self, frame: memoryview, header: RequestHeader) -> bytes:
        # The broker sees the tenant in the client id, so its logs and client-id quotas can attribute
        # traffic. Tagged header fields after the client id are kept as they were. JoinGroup is the
        # exception: the broker makes a classic member id from its client id ("<client id>-<uuid>"),
        # and the tenant sees member ids, so they must not carry the prefix.
        # A client sends the same client id on every request: the rewritten rest of the header is cached.
        joining = header.api_key == ApiKey.JOIN_GROUP
        original = bytes(frame[8:header.body_offset])
        rest = self._headers.get((joining, original))
        if rest is None:
            n = INT16.unpack_from(frame, 8)[0]
            prefix = self.ns.prefix if self.ns is not None and not joining else ""
            client_id = f"{prefix}{header.client_id or ''}".encode()
            rest = INT16.pack(len(client_id)) + client_id + bytes(frame[10 + max(n, 0):header.body_offset])
            if len(original) <= 256:  # per connection: a few short ones, whatever a client sends
                if len(self._headers) >= 4:
                    self._headers.clear()
                self._headers[joining, original] = rest
        return bytes(frame[:8]) + rest

    @property
    def prefix(self) -> str:
        """The tenant's prefix (to_cluster("") is "" on purpose: an empty name must stay invalid)."""
        assert self.ns is not None
        return self.ns.prefix

    def to_cluster(self, name: str) -> str:
        """The cluster name for a tenant's name; empty stays empty, so the broker refuses it."""
        assert self.ns is not None
        return self.ns.prefix + name if name else name

    def _inbound(self, entity: str, value: Any, ctx: RequestContext) -> Any:
        if value is None:
            return None
        if entity == "topicId":
            if value == ZERO_UUID or test_switches.SKIP_OWNERSHIP_CHECKS:
                return value
            name = self.topic_ids.name_of(value)
            if name is not None and self.ns is not None and self.ns.owns(name):
                return value
            if name is None and not ctx.ids_looked_up:
                ctx.unknown_ids.add(value)
                return value
            fake = uuid.uuid4()  # the broker answers UNKNOWN_TOPIC_ID for it; the client's id goes back
            ctx.fake_ids[fake] = value
            return fake
        return self.to_cluster(value)

    # -- responses --------------------------------------------------------------------------------
    def response(self, key: int, version: int, frame: memoryview, body_offset: int, ctx: RequestContext,
                 addresses: Addresses) -> list[Chunk]:
        """The response from just after its correlation id, rewritten."""
        wanted = self._wanted_in_responses
        handler = RESPONSE_HOOKS.get(key) if self.ns is not None else None
        if handler is not None:  # before the check below: embedded bytes hold names no field marks
            message = decode(RESPONSES[key], frame[body_offset:], version)
            handler(self, message, version, ctx)
            self._outbound_message(message, version, ctx, addresses, wanted)
            return [frame[4:body_offset], encode(message, version)]
        if not carries_entity(RESPONSES[key], version, wanted):  # e.g. Fetch before v16: pass it whole
            return [frame[4:]]
        refs = scan(RESPONSES[key], version, frame, body_offset, wanted)
        if not refs:
            return [frame[4:]]
        return splice(frame, self._outbound_refs(refs, ctx, addresses), 4)

    def _outbound_refs(self, refs: list[Ref], ctx: RequestContext, addresses: Addresses) -> list[tuple[Ref, Any]]:
        changes: list[tuple[Ref, Any]] = []
        node, host = -1, ""
        previous: Ref | None = None
        for ref in refs:
            entity, value = ref.entity, ref.value
            if entity == "addressNodeId":
                node = value
            elif entity == "addressHost" and node >= 0:
                host = value
                changes.append((ref, addresses.host(node)))
            elif entity == "addressPort" and node >= 0:
                addresses.seen.append((node, host, value))
                changes.append((ref, addresses.port_for(node)))
            elif entity == "topicId":
                if value in ctx.fake_ids:
                    changes.append((ref, ctx.fake_ids[value]))
                elif previous is not None and previous.entity == "topicName" and previous.value:
                    self.topic_ids.learn(value, previous.value)  # the name beside it is checked on its own
                else:
                    self._check_id(value, ctx)
            else:
                new = self.outbound(entity, value)
                if new != value:
                    changes.append((ref, new))
            previous = ref
        return changes

    def _outbound_message(self, message: Message, version: int, ctx: RequestContext, addresses: Addresses,
                          wanted: frozenset[str]) -> None:
        def ids(entity: str, value: Any, struct: Struct) -> Any:
            # First pass, while names are still the cluster's: learn id -> name, restore swapped ids.
            if value in ctx.fake_ids:
                return ctx.fake_ids[value]
            name = _field_with(struct, "topicName")
            if name:
                self.topic_ids.learn(value, name)
            else:
                self._check_id(value, ctx)
            return value

        def rule(entity: str, value: Any, struct: Struct) -> Any:
            if entity in ADDRESSES:
                node = _node_of(struct)
                if node is None or node < 0:
                    return value
                if entity == "addressHost":  # the port field is still the broker's here
                    addresses.seen.append((node, value, _field_with(struct, "addressPort")))
                    return addresses.host(node)
                if entity == "addressPort":
                    return addresses.port_for(node)
                return value
            return self.outbound(entity, value)

        if "topicId" in wanted:
            map_entities(message, version, frozenset({"topicId"}), ids)
        map_entities(message, version, wanted - {"topicId"}, rule)

    def _check_id(self, topic_id: uuid.UUID, ctx: RequestContext) -> None:
        """A topic id in a response must name one of the tenant's topics, like a name: Leak if it does not.

        An id the proxy has never seen is noted in `ctx.unverified_ids`, to be looked up before the
        response may leave (:func:`Rewriter.verify_ids`).
        """
        if self.ns is None or topic_id == ZERO_UUID or test_switches.SKIP_OWNERSHIP_CHECKS:
            return
        name = self.topic_ids.name_of(topic_id)
        if name is None:
            ctx.unverified_ids.add(topic_id)
        elif not self.ns.owns(name):
            raise Leak(f"response names topic id {topic_id}, which is not the tenant's")

    def verify_ids(self, ctx: RequestContext) -> None:
        """After a look-up of `ctx.unverified_ids`: Leak if one of them names another tenant's topic."""
        for topic_id in ctx.unverified_ids:
            name = self.topic_ids.name_of(topic_id)
            if name is not None and self.ns is not None and not self.ns.owns(name):
                raise Leak(f"response names topic id {topic_id}, which is not the tenant's")

    def outbound(self, entity: str, value: Any) -> Any:
        """A cluster name or broker message as the tenant must see it; Leak for a foreign name."""
        if value is None or self.ns is None:
            return value
        if entity == "errorMessage":
            return self.ns.strip_text(value)
        if value == "":
            return value
        local = self.ns.from_cluster(value)
        if local is None:
            raise Leak(f"response names {entity} {value!r}, which the tenant does not own")
        return local

    def owns(self, cluster_name: str | None) -> bool:
        return self.ns is not None and self.ns.owns(cluster_name)


def _field_with(struct: Struct, entity: str) -> Any:
    for f in type(struct).FIELDS:
        if f.entity == entity and not f.array:
            return getattr(struct, f.name)
    return None


def _node_of(struct: Struct) -> int | None:
    node = _field_with(struct, "addressNodeId")
    return node if isinstance(node, int) else None

