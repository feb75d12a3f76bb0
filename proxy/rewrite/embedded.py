"""Topic names inside the opaque bytes of classic consumer groups (JoinGroup, SyncGroup, DescribeGroups).

With protocol type "consumer", member metadata is a ConsumerProtocolSubscription and assignments are
ConsumerProtocolAssignment: an int16 version, then the body. A newer version than the pinned schemas
is read as the newest known one and its extra bytes kept, as Kafka's own clients do.
"""

from __future__ import annotations

from collections.abc import Callable

from tenantry.protocol import DecodeError
from tenantry.protocol.codec import decode_from, encode
from tenantry.protocol.messages.consumer_protocol_assignment import ConsumerProtocolAssignment
from tenantry.protocol.messages.consumer_protocol_subscription import ConsumerProtocolSubscription
from tenantry.protocol.primitives import INT16
from tenantry.protocol.schema import Message

NameFn = Callable[[str], str]


def _rewrite(data: bytes | None, cls: type[Message], apply: Callable[[Message], None]) -> bytes | None:
    if not data:
        return data
    if len(data) < 2:
        raise DecodeError("embedded consumer protocol bytes are shorter than their version")
    version = INT16.unpack_from(data, 0)[0]
    if version < 0:
        raise DecodeError(f"embedded consumer protocol version {version}")
    hi = cls.VALID_VERSIONS.hi or 0
    known = min(version, hi)
    obj, end = decode_from(cls, data, known, False, 2)
    apply(obj)
    return INT16.pack(version) + encode(obj, known) + data[end:]


def subscription(data: bytes | None, fn: NameFn) -> bytes | None:
    def apply(obj: Message) -> None:
        assert isinstance(obj, ConsumerProtocolSubscription)
        obj.topics = [fn(t) for t in obj.topics]
        for owned in obj.owned_partitions:
            owned.topic = fn(owned.topic)
    return _rewrite(data, ConsumerProtocolSubscription, apply)


def assignment(data: bytes | None, fn: NameFn) -> bytes | None:
    def apply(obj: Message) -> None:
        assert isinstance(obj, ConsumerProtocolAssignment)
        for assigned in obj.assigned_partitions:
            assigned.topic = fn(assigned.topic)
    return _rewrite(data, ConsumerProtocolAssignment, apply)
