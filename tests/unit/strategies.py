"""Hypothesis strategies for any generated message at any version, built from its FIELDS."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import strategies as st

from tenantry.protocol.schema import Field, Struct

_INTS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def _scalar(f: Field) -> st.SearchStrategy[Any]:
    if f.type in _INTS:
        bits = _INTS[f.type]
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return {
        "uint16": st.integers(0, 65535),
        "float64": st.floats(allow_nan=False),
        "bool": st.booleans(),
        "string": _text,
        "bytes": st.binary(max_size=16),
        "records": st.binary(max_size=64),
        "uuid": st.uuids().map(lambda u: uuid.UUID(int=u.int)),
    }[f.type]


def struct_strategy(cls: type[Struct], version: int, flexible: bool, depth: int = 0) -> st.SearchStrategy[Any]:
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for f in cls.FIELDS:
        if not f.in_version(version):
            continue  # absent from this version: stays at its default, as decode leaves it
        element = struct_strategy(f.struct, version, flexible, depth + 1) if f.struct is not None else _scalar(f)
        value = st.lists(element, max_size=3 if depth < 2 else 1) if f.array else element
        if version in f.nullable:
            value = st.none() | value
        kwargs[f.name] = value
    if flexible:
        # Unknown tagged fields from a newer peer: tags far above any Kafka uses today.
        kwargs["unknown_tags"] = st.dictionaries(st.integers(10_000, 10_010), st.binary(max_size=8), max_size=2)
    return st.builds(cls, **kwargs)
