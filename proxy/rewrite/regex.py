"""Server-side topic regexes (KIP-848): confine a tenant's pattern to its own prefix.

The broker matches the whole topic name with RE2. `R` becomes `<escaped prefix>(?:R)`, but only after
R compiles on its own: a pattern such as `x)|(.*` would otherwise close the group early and match
every tenant's topics.
"""

from __future__ import annotations

import re


class InvalidRegex(ValueError):
    """The pattern is not one complete regular expression."""


def confine(pattern: str, prefix: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InvalidRegex(f"invalid regular expression {pattern!r}: {exc}") from None
    return f"{re.escape(prefix)}(?:{pattern})"


def unconfine(pattern: str, prefix: str) -> str:
    head = f"{re.escape(prefix)}(?:"
    if pattern.startswith(head) and pattern.endswith(")"):
        return pattern[len(head):-1]
    return pattern
