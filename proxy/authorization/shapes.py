"""The shapes refused items take in a response: built from the request's own items, per API schema.

A refused topic's entry in a response mirrors the request's entry (its name or topic id, its partitions)
with an error code on every partition, as a broker answers it. The generated classes' field tables say
which field holds what, so one function serves every partition-listing API.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tenantry.protocol import decode, encode
from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.scanner import Chunk
from tenantry.protocol.schema import Field, Message, Struct

_IDENTITY = ("name", "topic", "topic_id", "group_id", "transactional_id", "resource_type", "resource_name", "key")
_INDEX = ("partition_index", "index", "partition")
_ERROR = ("error_code", "partition_error_code")
#: Fields an error answer sets to Kafka's "none" values rather than the schema's zero defaults.
_NONE_VALUES = {"base_offset": -1, "log_start_offset": -1, "log_append_time_ms": -1, "high_watermark": -1,
                "last_stable_offset": -1, "committed_offset": -1, "offset": -1, "timestamp": -1, "leader_epoch": -1,
                "low_watermark": -1, "end_offset": -1, "num_partitions": -1, "replication_factor": -1,
                "producer_id": -1, "producer_epoch": -1, "node_id": -1, "port": -1, "generation_id": -1,
                "member_epoch": -1, "preferred_read_replica": -1, "committed_leader_epoch": -1}


def field_of(cls: type[Struct], name: str) -> Field:
    return next(f for f in cls.FIELDS if f.name == name)


def element_class(cls: type[Struct], name: str) -> Any:
    struct = field_of(cls, name).struct
    assert struct is not None, f"{cls.__name__}.{name} is not a list of structs"
    return struct


def _names(cls: type[Struct]) -> set[str]:
    return {f.name for f in cls.FIELDS}


def blank(cls: Any, **values: Any) -> Any:
    """An instance with Kafka's -1 for offsets, ids and epochs, and `values`."""
    instance = cls()
    for name in _names(cls) & _NONE_VALUES.keys():
        setattr(instance, name, _NONE_VALUES[name])
    for f in cls.FIELDS:
        if f.type == "records":  # empty, never null: clients read a null record set as a malformed response
            setattr(instance, f.name, b"")
    for name, value in values.items():
        setattr(instance, name, value)
    return instance


def refused_item(cls: Any, item: Any, error: int, message: str | None = None) -> Any:
    """A response entry of `cls` for the request entry `item` (a struct, or a bare name), with `error`.

    Its identity (name, topic id, group id, ...) is copied from `item`; a list of partitions gets one
    entry per partition the request named, each with the error."""
    out = blank(cls)
    names = _names(cls)
    if isinstance(item, str):
        identity = next(n for n in _IDENTITY if n in names)
        setattr(out, identity, item)
    else:
        for name in _IDENTITY:
            if name in names and hasattr(item, name):
                setattr(out, name, getattr(item, name))
        partitions = _partitions_field(cls)
        if partitions is not None:
            setattr(out, partitions.name, [refused_partition(partitions.struct, p, error)
                                           for p in _request_partitions(item)])
    for name in _ERROR:
        if name in names:
            setattr(out, name, error)
            break
    if message is not None and "error_message" in names:
        out.error_message = message
    return out


def refused_partition(cls: Any, partition: Any, error: int) -> Any:
    names = _names(cls)
    index = partition if isinstance(partition, int) else next(
        getattr(partition, n) for n in _INDEX if hasattr(partition, n))
    out = blank(cls)
    setattr(out, next(n for n in _INDEX if n in names), index)
    setattr(out, next(n for n in _ERROR if n in names), error)
    return out


def _partitions_field(cls: type[Struct]) -> Any:
    """The field of a response entry that lists partitions (structs with an index and an error code)."""
    for f in cls.FIELDS:
        if f.array and f.struct is not None:
            names = _names(f.struct)
            if names & set(_INDEX) and names & set(_ERROR):
                return f
    return None


def _request_partitions(item: Any) -> Sequence[Any]:
    for name in ("partitions", "partition_data", "partition_indexes"):
        value = getattr(item, name, None)
        if value is not None:
            return value  # type: ignore[no-any-return]
    return ()


def error_response(api_key: int, error: int, message: str | None = None, **values: Any) -> Message:
    """A response of `api_key` that refuses the whole request with `error` at the top level."""
    cls = RESPONSES[api_key]
    response: Message = blank(cls, **values)
    if "error_code" in _names(cls):
        response.error_code = error  # type: ignore[attr-defined]
    if message is not None and "error_message" in _names(cls):
        response.error_message = message  # type: ignore[attr-defined]
    return response


def items_response(api_key: int, field_name: str, items: list[Any], **values: Any) -> Message:
    """A response of `api_key` holding only `items` in `field_name` (every item of the request refused)."""
    response: Message = blank(RESPONSES[api_key], **values)
    setattr(response, field_name, items)
    return response


def edit_response(api_key: int, version: int, body: list[Chunk], body_offset: int,
                  edit: Callable[[Any], None]) -> list[Chunk]:
    """The (already rewritten) response, decoded, changed by `edit` and encoded again."""
    data = b"".join(bytes(c) for c in body)
    message = decode(RESPONSES[api_key], memoryview(data)[body_offset:], version)
    edit(message)
    return [data[:body_offset], encode(message, version)]


def merge_items(api_key: int, version: int, body: list[Chunk], body_offset: int, field_name: str,
                items: Sequence[Any]) -> list[Chunk]:
    """The (already rewritten) response with `items` added to its list `field_name`."""
    return edit_response(api_key, version, body, body_offset, lambda m: getattr(m, field_name).extend(items))
