"""What the schema says about a struct's layout at a version: which entities it carries, and whether
every value of it has the same size. Shared by the scanner and the scan programs compiled from it."""

from __future__ import annotations

from tenantry.protocol.primitives import FIXED_SIZES
from tenantry.protocol.schema import Struct

__all__ = ["carries_entity", "contains_entity", "fixed_size"]

_contains: dict[tuple[type[Struct], frozenset[str]], bool] = {}


def contains_entity(cls: type[Struct], wanted: frozenset[str]) -> bool:
    """Whether any field of `cls`, at any depth and version, names one of the wanted entities."""
    key = (cls, wanted)
    if key not in _contains:
        _contains[key] = any(
            f.entity in wanted or (f.struct is not None and contains_entity(f.struct, wanted))
            for f in cls.FIELDS
        )
    return _contains[key]


_carries: dict[tuple[type[Struct], int, frozenset[str]], bool] = {}


def carries_entity(cls: type[Struct], version: int, wanted: frozenset[str]) -> bool:
    """Whether `cls` at `version` has any field, at any depth, of a wanted entity (nothing to scan if not)."""
    key = (cls, version, wanted)
    if key not in _carries:
        _carries[key] = any(
            f.in_version(version) and (f.entity in wanted or (f.struct is not None
                                                              and carries_entity(f.struct, version, wanted)))
            for f in cls.FIELDS
        )
    return _carries[key]


def fixed_size(cls: type[Struct], version: int, flexible: bool) -> int | None:
    """The encoded size of `cls` when it is the same for every value, else None."""
    if flexible:
        return None
    total = 0
    for f in cls.FIELDS:
        if not f.in_version(version):
            continue
        if f.array or f.type not in FIXED_SIZES or version in f.nullable:
            return None
        total += FIXED_SIZES[f.type]
    return total
