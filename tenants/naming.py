"""A tenant's hidden namespace: its names carry the tenant's prefix on the cluster and never outside it.

Kafka topic names are at most 249 characters of [a-zA-Z0-9._-], and "." and "." alone are not names.
Group and transactional ids are any non-empty string, but the proxy holds them to the same alphabet
and length so that a tenant's id can never smuggle a separator or another tenant's prefix.
"""

from __future__ import annotations

import re

MAX_NAME = 249
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


class InvalidName(ValueError):
    """A name the tenant may not use; the message says why."""


class Namespace:
    """Maps a tenant's names to cluster names and back, for one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.max_length = MAX_NAME - len(prefix)

    def to_cluster(self, name: str) -> str:
        """The cluster name of the tenant's `name`; InvalidName if the tenant may not use it."""
        if not name:
            raise InvalidName("a name may not be empty")
        if name in (".", ".."):
            raise InvalidName(f"{name!r} is not a legal name")
        if len(name) > self.max_length:
            raise InvalidName(f"a name may be at most {self.max_length} characters, this one has {len(name)}")
        if not _LEGAL.fullmatch(name):
            raise InvalidName(f"{name!r} may contain only ASCII letters, digits, '.', '_' and '-'")
        return self.prefix + name

    def owns(self, cluster_name: str | None) -> bool:
        return cluster_name is not None and cluster_name.startswith(self.prefix) and len(cluster_name) > len(
            self.prefix)

    def from_cluster(self, cluster_name: str) -> str | None:
        """The tenant's name for a cluster name, or None if it is not the tenant's."""
        return cluster_name[len(self.prefix):] if self.owns(cluster_name) else None

    def strip_text(self, text: str) -> str:
        """A broker's message with the tenant's prefix removed wherever it quotes a name."""
        return text.replace(self.prefix, "")
