"""RE2 syntax, read just deep enough to rearrange a pattern: groups, alternation, repetition and anchors.

Everything that consumes one character (a literal, a class, an escape such as `\\d` or `\\pL`, `.`) stays
the pattern's own text, wrapped in the case and dot flags in force where it stood, so it means the same
wherever it is moved. Callers validate the pattern with RE2 first; this reader only has to agree with RE2
on valid patterns, and refuses anything it does not know rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MAX_DEPTH = 100  # RE2 itself stops at 1000; a tenant needs nowhere near that many nested groups


class RegexSyntaxError(ValueError):
    """The pattern uses something this reader does not handle."""


@dataclass(frozen=True)
class Char:
    """Consumes exactly one character; `text` is a self-contained RE2 pattern for it."""
    text: str


@dataclass(frozen=True)
class Assertion:
    """Zero-width: `start` is ^ or \\A, `end` is $ or \\z, `word` is \\b, `nonword` is \\B."""
    kind: Literal["start", "end", "word", "nonword"]


@dataclass(frozen=True)
class Concat:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Alternation:
    options: tuple[Node, ...]


@dataclass(frozen=True)
class Repeat:
    node: Node
    low: int
    high: int | None  # None: unbounded


Node = Char | Assertion | Concat | Alternation | Repeat

_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?([:)])")
_NAMED = re.compile(r"\(\?P?<[^>]*>")
_ESCAPE_ASSERTIONS = {"A": "start", "z": "end", "b": "word", "B": "nonword"}
_OCTAL = re.compile(r"[0-7]{1,3}")


def parse(pattern: str) -> Node:
    reader = _Reader(pattern)
    node = reader.alternation(0)
    if reader.i != len(pattern):
        raise RegexSyntaxError(f"unexpected {pattern[reader.i]!r} at {reader.i}")
    return node


def literal(char: str) -> str:
    """A pattern matching exactly `char`."""
    return char if char.isalnum() and char.isascii() else f"\\x{{{ord(char):x}}}"


class _Reader:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.flags: frozenset[str] = frozenset()

    def alternation(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise RegexSyntaxError(f"groups nested deeper than {MAX_DEPTH}")
        options = [self.concat(depth)]
        while self.i < len(self.p) and self.p[self.i] == "|":
            self.i += 1
            options.append(self.concat(depth))
        return options[0] if len(options) == 1 else Alternation(tuple(options))

    def concat(self, depth: int) -> Node:
        parts: list[Node] = []
        while self.i < len(self.p) and self.p[self.i] not in "|)":
            atoms = self.atom(depth)
            while (bounds := self.repetition()) is not None:
                if not atoms:
                    raise RegexSyntaxError("repetition of nothing")
                atoms[-1] = Repeat(atoms[-1], *bounds)
            parts.extend(atoms)
        return parts[0] if len(parts) == 1 else Concat(tuple(parts))

    def repetition(self) -> tuple[int, int | None] | None:
        c = self.p[self.i] if self.i < len(self.p) else ""
        if c in ("*", "+", "?") and c:
            self.i += 1
            bounds: tuple[int, int | None] = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        elif c == "{" and (m := _REPEAT.match(self.p, self.i)):
            self.i = m.end()
            low = int(m.group(1))
            bounds = (low, low if m.group(2) is None else (int(m.group(3)) if m.group(3) else None))
        else:
            return None
        if self.i < len(self.p) and self.p[self.i] == "?":  # lazy: the same language
            self.i += 1
        return bounds

    def atom(self, depth: int) -> list[Node]:
        c = self.p[self.i]
        if c == "(":
            return self.group(depth)
        if c == "\\":
            return self.escape()
        self.i += 1
        if c == "^":
            return [Assertion("start")]
        if c == "$":
            return [Assertion("end")]
        if c == "[":
            return [self.char(self.char_class())]
        if c in "*+?":
            raise RegexSyntaxError(f"repetition of nothing at {self.i - 1}")
        return [self.char("." if c == "." else literal(c))]

    def group(self, depth: int) -> list[Node]:
        saved = self.flags
        if named := _NAMED.match(self.p, self.i):
            self.i = named.end()
        elif flags := _FLAGS.match(self.p, self.i):
            self.i = flags.end()
            self.flags = (self.flags | set(flags.group(1))) - set(flags.group(2) or "")
            if flags.group(3) == ")":  # (?i): for the rest of the enclosing group
                return []
        elif self.p.startswith("(?", self.i):
            raise RegexSyntaxError(f"unsupported group at {self.i}")
        else:
            self.i += 1
        inner = self.alternation(depth + 1)
        if self.i >= len(self.p) or self.p[self.i] != ")":
            raise RegexSyntaxError("missing )")
        self.i += 1
        self.flags = saved
        return [inner]

    def escape(self) -> list[Node]:
        start = self.i
        if self.i + 1 >= len(self.p):
            raise RegexSyntaxError("trailing backslash")
        c = self.p[self.i + 1]
        self.i += 2
        if c in _ESCAPE_ASSERTIONS:
            return [Assertion(_ESCAPE_ASSERTIONS[c])]  # type: ignore[arg-type]
        if c == "Q":
            end = self.p.find("\\E", self.i)
            end = len(self.p) if end < 0 else end
            text, self.i = self.p[self.i:end], min(end + 2, len(self.p))
            return [self.char(literal(ch)) for ch in text]
        if c == "C":
            raise RegexSyntaxError("\\C (any byte) is not supported by the broker's RE2/J")
        if c in "pPx" and self.i < len(self.p) and self.p[self.i] == "{":
            close = self.p.find("}", self.i)
            if close < 0:
                raise RegexSyntaxError("missing }")
            self.i = close + 1
        elif c in "pP":
            self.i += 1
        elif c == "x":
            self.i += 2
        elif c in "01234567":
            self.i = start + 1 + len(_OCTAL.match(self.p, start + 1).group())  # type: ignore[union-attr]
        return [self.char(self.p[start:self.i])]

    def char_class(self) -> str:
        start = self.i - 1
        if self.p.startswith("^", self.i):
            self.i += 1
        if self.p.startswith("]", self.i):  # a ] first is a literal
            self.i += 1
        while self.i < len(self.p):
            c = self.p[self.i]
            if c == "]":
                self.i += 1
                return self.p[start:self.i]
            if c == "\\":
                self.i += 2
            elif self.p.startswith("[:", self.i) and (close := self.p.find(":]", self.i + 2)) >= 0:
                self.i = close + 2
            else:
                self.i += 1
        raise RegexSyntaxError("missing ]")

    def char(self, text: str) -> Char:
        flags = "".join(sorted(self.flags & {"i", "s"}))
        return Char(f"(?{flags}:{text})" if flags else text)
