"""The schema model that generated message classes are described in: version ranges, fields, structs.

Generated modules (``tenantry.protocol.messages``) declare one dataclass per struct of a Kafka message
schema and attach a ``FIELDS`` tuple that keeps every fact of the JSON schema the codec needs: versions,
nullability, tags, defaults and the entity a field names (topic, group, broker address...).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeAlias


class Versions(NamedTuple):
    """An inclusive version range; ``hi`` None means "and every later version"."""

    lo: int
    hi: int | None

    def __contains__(self, version: object) -> bool:
        if not isinstance(version, int):
            return False
        return self.lo <= version and (self.hi is None or version <= self.hi)

    @classmethod
    def parse(cls, text: str | None) -> Versions:
        if text is None or text == "none":
            return NO_VERSIONS
        if text.endswith("+"):
            return cls(int(text[:-1]), None)
        if "-" in text:
            lo, hi = text.split("-")
            return cls(int(lo), int(hi))
        return cls(int(text), int(text))


NO_VERSIONS = Versions(1, 0)
ZERO_UUID = uuid.UUID(int=0)

#: Primitive wire types; "struct" fields name a Struct subclass instead.
PRIMITIVES = frozenset(
    {"int8", "int16", "uint16", "int32", "int64", "float64", "bool", "string", "bytes", "records", "uuid"}
)


StructClass: TypeAlias = "type[Struct]"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a struct as the schema declares it, across every version."""

    name: str
    kafka_name: str
    type: str
    versions: Versions
    array: bool = False
    struct: StructClass | None = None  # (the field named `type` hides the builtin in this class body)
    nullable: Versions = NO_VERSIONS
    tagged: Versions = NO_VERSIONS
    tag: int | None = None
    default: Any = None
    default_null: bool = False
    entity: str | None = None
    # Only RequestHeader.ClientId sets this: it keeps the old string layout even in flexible headers.
    flexible: Versions | None = None

    def in_version(self, version: int) -> bool:
        return version in self.versions

    def is_tagged(self, version: int) -> bool:
        return version in self.tagged

    def default_value(self) -> Any:
        if self.default_null:
            return None
        if self.array:
            return []
        if self.struct is not None:
            return self.struct()
        return self.default


class Struct:
    """Base of every generated struct: typed fields plus the unknown tagged fields seen on decode."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    unknown_tags: dict[int, bytes]


class Message(Struct):
    """Base of generated top-level request, response, header and data messages."""

    __slots__ = ()
    API_KEY: ClassVar[int | None] = None
    MESSAGE_TYPE: ClassVar[str] = ""
    VALID_VERSIONS: ClassVar[Versions] = NO_VERSIONS
    FLEXIBLE_VERSIONS: ClassVar[Versions] = NO_VERSIONS
