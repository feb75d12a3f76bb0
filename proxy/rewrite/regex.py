"""Server-side topic regexes (KIP-848): confine a tenant's pattern to its own prefix.

The broker compiles the pattern with RE2/J and keeps a topic when the pattern matches its whole name.
The confined pattern must match `prefix + name` exactly when the tenant's pattern matches `name`, for
every legal topic name (ASCII letters, digits, '.', '_', '-'; never a newline).

`<escaped prefix>(?:R)` does that unless R looks at the start of the name: `^` and `\\A` can never match
after the prefix, and `\\b`/`\\B` see the prefix's last character instead of nothing. Those patterns are
rewritten (below) so that each assertion means what it meant at the start of a private cluster's name.
The broker hands the pattern back in ConsumerGroupDescribe, so a rewritten pattern carries the tenant's
own text in a branch that can never match (`\\b\\B`): any proxy, even after a restart, can show the
tenant what it sent.

Every pattern is compiled with RE2 first, so a tenant gets INVALID_REGULAR_EXPRESSION for exactly the
patterns the broker would refuse, and a pattern such as `x)|(.*` cannot close the group early.
"""

from __future__ import annotations

import re

import re2

from tenantry.proxy.rewrite.regex_syntax import (
    Alternation,
    Assertion,
    Char,
    Concat,
    Node,
    RegexSyntaxError,
    Repeat,
    parse,
)

MAX_CONFINED = 65536  # a rewritten pattern can grow; past this it is refused rather than sent
_NEVER = r"\b\B"
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a tenant's bad pattern is an answer, not a line on the proxy's stderr


class InvalidRegex(ValueError):
    """The pattern is not one complete RE2 regular expression, or cannot be confined."""


def confine(pattern: str, prefix: str) -> str:
    try:
        re2.compile(pattern, options=_OPTIONS)
        tree = parse(pattern)
    except (re2.error, RegexSyntaxError) as exc:
        raise InvalidRegex(f"invalid regular expression {pattern!r}: {_reason(exc)}") from None
    head = re.escape(prefix)
    if not _looks_at_start(tree, prefix):
        return f"{head}(?:{pattern})"
    rewritten = _Confiner(_ends_in_word_char(prefix)).rewrite(tree)
    confined = f"{head}(?:{_NEVER if rewritten is None else rewritten})|{_NEVER}(?:{pattern})"
    if len(confined) > MAX_CONFINED:
        raise InvalidRegex(f"regular expression {pattern!r} is too complex to confine")
    return confined


def unconfine(pattern: str, prefix: str) -> str:
    """The tenant's pattern that `confine` turned into `pattern`; `pattern` itself if it is not one."""
    head = f"{re.escape(prefix)}(?:"
    if not (pattern.startswith(head) and pattern.endswith(")")):
        return pattern
    marker = f")|{_NEVER}(?:"
    at = pattern.find(marker)
    while at >= 0:  # the tenant's text may itself contain the marker: take the split that round-trips
        candidate = pattern[at + len(marker):-1]
        if _confines_to(candidate, prefix, pattern):
            return candidate
        at = pattern.find(marker, at + 1)
    return pattern[len(head):-1]


def _confines_to(candidate: str, prefix: str, pattern: str) -> bool:
    try:
        return confine(candidate, prefix) == pattern
    except InvalidRegex:
        return False


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


def _ends_in_word_char(prefix: str) -> bool:
    return bool(prefix) and (prefix[-1].isalnum() or prefix[-1] == "_")


def _looks_at_start(node: Node, prefix: str) -> bool:
    """Whether the pattern has an assertion that sees the prefix differently from the start of a name."""
    if isinstance(node, Assertion):
        return node.kind == "start" or (node.kind in ("word", "nonword") and _ends_in_word_char(prefix))
    if isinstance(node, Concat):
        return any(_looks_at_start(part, prefix) for part in node.parts)
    if isinstance(node, Alternation):
        return any(_looks_at_start(option, prefix) for option in node.options)
    if isinstance(node, Repeat):
        return _looks_at_start(node.node, prefix)
    return False


# -- the rewrite ------------------------------------------------------------------------------------
# Each node is read in two places: at the start of the name, before anything is consumed, and later.
# For a node N, `start(N)` gives (E, P): E the zero-width ways N can match at the start (a pattern of
# assertions, or None if there are none) and P the ways it matches one or more characters from there.
# `later(N)` is N anywhere else, where ^ never matches. Names are never empty, so the confined pattern
# is P of the whole. Patterns are strings; None means "cannot match".
Pattern = str | None


class _Confiner:
    def __init__(self, prefix_ends_in_word_char: bool) -> None:
        self.flip_word = prefix_ends_in_word_char

    def rewrite(self, tree: Node) -> Pattern:
        return self.start(tree)[1]

    def start(self, node: Node) -> tuple[Pattern, Pattern]:
        if isinstance(node, Char):
            return None, node.text
        if isinstance(node, Assertion):
            return self.at_start(node.kind), None
        if isinstance(node, Alternation):
            pairs = [self.start(option) for option in node.options]
            return _alt(*(e for e, _ in pairs)), _alt(*(p for _, p in pairs))
        if isinstance(node, Concat):
            empty: Pattern = ""
            consumed: Pattern = None
            for part in node.parts:
                e, p = self.start(part)
                empty, consumed = _seq(empty, e), _alt(_seq(empty, p), _seq(consumed, self.later(part)))
            return empty, consumed
        return self.start_repeat(node)

    def start_repeat(self, node: Repeat) -> tuple[Pattern, Pattern]:
        e, p = self.start(node.node)
        rest = self.later(node.node)
        high = node.high
        # The first iteration that consumes comes after zero or more zero-width ones at the start.
        first = _seq(p, _rep(rest, max(node.low - 1, 0), None if high is None else high - 1))
        after_empty = None if high is not None and high < 2 else _seq(
            e, p, _rep(rest, 0, None if high is None else high - 2))
        return ("" if node.low == 0 else e), _alt(first, after_empty)

    def at_start(self, kind: str) -> str:
        if kind == "start":
            return ""
        if kind == "end":
            return "$"
        # Before a name there is nothing, which RE2 counts as a non-word character; before the name's
        # first character on the cluster there is the prefix's last, which may be a word character.
        word = (kind == "word") != self.flip_word
        return r"\b" if word else r"\B"

    def later(self, node: Node) -> Pattern:
        if isinstance(node, Char):
            return node.text
        if isinstance(node, Assertion):
            return {"start": None, "end": "$", "word": r"\b", "nonword": r"\B"}[node.kind]
        if isinstance(node, Alternation):
            return _alt(*(self.later(option) for option in node.options))
        if isinstance(node, Concat):
            return _seq(*(self.later(part) for part in node.parts))
        return _rep(self.later(node.node), node.low, node.high)


def _seq(*patterns: Pattern) -> Pattern:
    if any(p is None for p in patterns):
        return None
    return "".join(p for p in patterns if p)


def _alt(*patterns: Pattern) -> Pattern:
    options = list(dict.fromkeys(p for p in patterns if p is not None))
    if not options:
        return None
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def _rep(pattern: Pattern, low: int, high: int | None) -> Pattern:
    if high == 0 or pattern == "":
        return ""
    if pattern is None:
        return "" if low == 0 else None
    return f"(?:{pattern}){{{low},{'' if high is None else high}}}"
