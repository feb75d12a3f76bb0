"""Which of a tenant's topics have their records encrypted at the proxy (issue 18), from its config entry::

    [tenants.encryption]
    topics = ["payments.*", "pii-*"]     # sealed on produce, opened on fetch
    read_topics = ["legacy-*"]           # opened on fetch only: encryption was turned off for them

Globs are fnmatch's (``*``, ``?``, ``[...]``), matched against the tenant's own topic names.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

ENCRYPTION_KEYS = ("topics", "read_topics")


class EncryptionPolicyError(ValueError):
    pass


@dataclass(frozen=True)
class EncryptionPolicy:
    """Which of a tenant's topics are encrypted (sealed on produce, opened on fetch) and which are only
    opened (encryption was turned off for them: records sealed before stay readable). Globs, fnmatch's."""

    topics: tuple[str, ...] = ()
    read_topics: tuple[str, ...] = ()
    _seen: dict[str, tuple[bool, bool]] = field(default_factory=dict, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.topics or self.read_topics)

    def _match(self, topic: str) -> tuple[bool, bool]:
        known = self._seen.get(topic)
        if known is None:
            sealed = any(fnmatch.fnmatchcase(topic, glob) for glob in self.topics)
            known = (sealed, sealed or any(fnmatch.fnmatchcase(topic, glob) for glob in self.read_topics))
            if len(self._seen) < 65536:  # a tenant has as many names as its topic limit; bounded regardless
                self._seen[topic] = known
        return known

    def seals(self, topic: str) -> bool:
        return self._match(topic)[0]

    def opens(self, topic: str) -> bool:
        return self._match(topic)[1]

    def to_dict(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.topics:
            out["topics"] = list(self.topics)
        if self.read_topics:
            out["read_topics"] = list(self.read_topics)
        return out

    @classmethod
    def from_dict(cls, where: str, entry: Any) -> EncryptionPolicy:
        if not isinstance(entry, dict):
            raise EncryptionPolicyError(f"{where}: a table with topics and read_topics")
        unknown = set(entry) - set(ENCRYPTION_KEYS)
        if unknown:
            raise EncryptionPolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}; "
                                        f"known: {', '.join(ENCRYPTION_KEYS)}")
        lists = []
        for key in ENCRYPTION_KEYS:
            globs = entry.get(key, [])
            if not isinstance(globs, list) or not all(isinstance(g, str) and 0 < len(g) <= 249 for g in globs):
                raise EncryptionPolicyError(f"{where}: {key} is a list of topic globs (1-249 characters each)")
            lists.append(tuple(dict.fromkeys(globs)))
        return cls(lists[0], lists[1])
