"""Scan programs: the scanner's walk of one (struct, version, wanted entities), flattened for the C loop.

:mod:`tenantry.protocol.scanner` walks a message with a tree of closures, one per field; every field
costs Python calls. This module compiles the same walk, from the same schema facts and the same rules
(which fields to skip in one step, which to read, which tagged fields to enter), into a flat list of
int32 opcodes that ``tenantry.protocol._native`` runs without calling back into Python except to build
the refs it finds. The opcodes are described in ``protocol/_native.c``; the two files change together.

The pure-Python scanner stays the reference: the property tests check that both give the same refs
for every valid message and both refuse every invalid one.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from tenantry.protocol.codec import is_compact
from tenantry.protocol.layout import contains_entity, fixed_size
from tenantry.protocol.primitives import FIXED_SIZES
from tenantry.protocol.schema import Field, Message, Struct

OP_END, OP_SKIP, OP_SKIP_ANY, OP_SIZED, OP_REF, OP_ARRAY, OP_NULLABLE, OP_TAGS = range(8)
KIND_INT, KIND_UINT, KIND_FLOAT, KIND_BOOL, KIND_UUID, KIND_STRING, KIND_BYTES, KIND_RECORDS = range(8)
_KINDS = {"int8": KIND_INT, "int16": KIND_INT, "int32": KIND_INT, "int64": KIND_INT, "uint16": KIND_UINT,
          "float64": KIND_FLOAT, "bool": KIND_BOOL, "uuid": KIND_UUID, "string": KIND_STRING,
          "bytes": KIND_BYTES, "records": KIND_RECORDS}
#: The types a sized skip reads an int16 length for, in the classic layout; the rest have an int32 one.
_NARROW = "string"

#: What OP_REF reports: (entity, type, compact, kind, size) per constant.
Const = tuple[str, str, bool, int, int]


@dataclass(frozen=True, slots=True)
class Program:
    code: bytes  # int32 opcodes, native byte order
    consts: tuple[Const, ...]


_programs: dict[tuple[type[Message], int, frozenset[str]], Program] = {}


def program(cls: type[Message], version: int, wanted: frozenset[str]) -> Program:
    """The compiled walk of message `cls` at `version` that reports the fields of the `wanted` entities."""
    key = (cls, version, wanted)
    found = _programs.get(key)
    if found is None:
        compiler = _Compiler(version, version in cls.FLEXIBLE_VERSIONS, wanted)
        compiler.struct(cls, compiler.code)
        compiler.code.append(OP_END)
        found = _programs[key] = Program(array("i", compiler.code).tobytes(), tuple(compiler.consts))
    return found


class _Compiler:
    def __init__(self, version: int, flexible: bool, wanted: frozenset[str]) -> None:
        self.version, self.flexible, self.wanted = version, flexible, wanted
        self.code: list[int] = []
        self.consts: list[Const] = []

    def struct(self, cls: type[Struct], code: list[int]) -> None:
        # Mirrors scanner.struct_scanner: runs of unwanted fixed-size fields are one checked skip.
        version, wanted = self.version, self.wanted
        tagged: list[Field] = []
        fixed_run = 0
        for f in cls.FIELDS:
            if not f.in_version(version):
                continue
            if self.flexible and f.is_tagged(version):
                if f.entity in wanted or (f.struct is not None and contains_entity(f.struct, wanted)):
                    tagged.append(f)
                continue
            if f.struct is None and not f.array and f.entity not in wanted and f.type in FIXED_SIZES:
                fixed_run += FIXED_SIZES[f.type]
                continue
            if fixed_run:
                code += [OP_SKIP, fixed_run]
                fixed_run = 0
            self.field(f, code)
        if fixed_run:
            code += [OP_SKIP, fixed_run]
        if self.flexible:
            code += [OP_TAGS, len(tagged)]
            for f in tagged:
                assert f.tag is not None
                body = self.body(f, inner=False)
                code += [f.tag, len(body), *body]

    def body(self, f: Field, inner: bool) -> list[int]:
        code: list[int] = []
        if inner:
            self.element(f, code)
        else:
            self.field(f, code)
        code.append(OP_END)
        return code

    def field(self, f: Field, code: list[int]) -> None:
        compact = is_compact(f, self.version, self.flexible)
        if f.array:
            body = self.body(f, inner=True)
            code += [OP_ARRAY, int(compact), len(body), *body]
        elif f.struct is not None and self.version in f.nullable:
            body = self.body(f, inner=True)
            code += [OP_NULLABLE, len(body), *body]
        else:
            self.element(f, code)

    def element(self, f: Field, code: list[int]) -> None:
        compact = is_compact(f, self.version, self.flexible)
        if f.struct is not None:
            size = fixed_size(f.struct, self.version, self.flexible)
            if not contains_entity(f.struct, self.wanted) and size is not None:
                code += [OP_SKIP_ANY, size]  # unchecked, as the reference: the next read checks
            else:
                self.struct(f.struct, code)
        elif f.entity in self.wanted:
            assert f.entity is not None
            self.consts.append((f.entity, f.type, compact, _KINDS[f.type], FIXED_SIZES.get(f.type, 0)))
            code += [OP_REF, len(self.consts) - 1]
        elif f.type in FIXED_SIZES:
            code += [OP_SKIP, FIXED_SIZES[f.type]]
        else:
            code += [OP_SIZED, int(compact), int(f.type != _NARROW)]
