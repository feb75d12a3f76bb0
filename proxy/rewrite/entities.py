"""Apply a function to every entity field of a decoded message, at one version, in wire order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenantry.protocol.schema import Struct

#: fn(entity, value, struct) -> new value. `struct` lets a rule see sibling fields (a topic's name
#: next to its id).
EntityFn = Callable[[str, Any, Struct], Any]


def map_entities(obj: Struct, version: int, wanted: frozenset[str], fn: EntityFn) -> None:
    for f in type(obj).FIELDS:
        if not f.in_version(version):
            continue
        value = getattr(obj, f.name)
        if value is None:
            continue
        if f.struct is not None:
            for item in value if f.array else [value]:
                if item is not None:
                    map_entities(item, version, wanted, fn)
        elif f.entity in wanted:
            if f.array:
                setattr(obj, f.name, [None if v is None else fn(f.entity, v, obj) for v in value])
            else:
                setattr(obj, f.name, fn(f.entity, value, obj))
