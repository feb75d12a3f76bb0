"""Kafka's ``ssl.principal.mapping.rules`` (KIP-371): from a client certificate's subject to a user name.

Rules are tried in order against the subject as an RFC 2253 string ("CN=alice,OU=payments,O=Example"):
``RULE:pattern/replacement/`` takes the first rule whose pattern matches the whole subject and gives the
replacement (``$1`` and so on for the pattern's groups), lower- or upper-cased with a trailing ``L`` or
``U``; ``DEFAULT`` gives the subject itself. A subject no rule matches maps to no one, and the client is
refused. Patterns are Python regular expressions, which agree with Java's on the patterns such rules use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Kafka's own parser: a rule's pattern and replacement cannot contain "/"; rules are separated by commas,
# which patterns may also contain, so rules are found by this pattern rather than by splitting on commas.
_RULE = re.compile(r"\s*(?:(DEFAULT)|RULE:([^/]*)/([^/]*)/([LU])?)\s*(?:,|$)")


class PrincipalRuleError(ValueError):
    """The rules cannot be parsed; the message quotes the part that could not."""


@dataclass(frozen=True)
class PrincipalRule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""  # "L", "U" or ""

    def apply(self, subject: str) -> str | None:
        if self.pattern is None:
            return subject
        match = self.pattern.fullmatch(subject)
        if match is None:
            return None
        name = match.expand(re.sub(r"\$(\d)", r"\\\1", self.replacement))
        return name.lower() if self.case == "L" else name.upper() if self.case == "U" else name


def parse_rules(text: str) -> tuple[PrincipalRule, ...]:
    """The rules of an ``ssl.principal.mapping.rules`` value (raises PrincipalRuleError)."""
    rules: list[PrincipalRule] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _RULE.match(text, position)
        if match is None or match.end() == position:
            raise PrincipalRuleError(f"cannot parse the rules from {text[position:]!r} on: expected "
                                     "DEFAULT or RULE:pattern/replacement/[L|U]")
        default, pattern, replacement, case = match.groups()
        if default:
            rules.append(PrincipalRule(None))
        else:
            try:
                rules.append(PrincipalRule(re.compile(pattern), replacement, case or ""))
            except re.error as exc:
                raise PrincipalRuleError(f"rule pattern {pattern!r} is not a regular expression ({exc})") from None
        position = match.end()
    if not rules:
        raise PrincipalRuleError("no rules: give at least DEFAULT")
    return tuple(rules)


def map_principal(rules: tuple[PrincipalRule, ...], subject: str) -> str | None:
    """The user name of the first rule that matches `subject`; None if none does."""
    for rule in rules:
        name = rule.apply(subject)
        if name is not None:
            return name
    return None
