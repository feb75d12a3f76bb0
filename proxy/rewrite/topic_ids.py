"""Topic id -> cluster topic name, learned from every response that carries both.

A name prefix cannot protect an id: any tenant can send any id. The proxy lets a request through
with an id only if the id is known to name one of the tenant's topics; any other id is swapped for a
fresh random one, so the broker itself answers UNKNOWN_TOPIC_ID, and the client's id is put back in
the response. Whether the foreign id exists is never revealed.
"""

from __future__ import annotations

import uuid

from tenantry.protocol.schema import ZERO_UUID


class TopicIds:
    def __init__(self, limit: int = 1_000_000) -> None:
        self._names: dict[uuid.UUID, str] = {}
        self._limit = limit

    def learn(self, topic_id: uuid.UUID, cluster_name: str) -> None:
        if topic_id == ZERO_UUID or not cluster_name:
            return
        if len(self._names) >= self._limit and topic_id not in self._names:
            self._names.pop(next(iter(self._names)))  # oldest first: a bounded cache
        self._names[topic_id] = cluster_name

    def forget(self, topic_id: uuid.UUID) -> None:
        self._names.pop(topic_id, None)

    def name_of(self, topic_id: uuid.UUID) -> str | None:
        return self._names.get(topic_id)

    def __len__(self) -> int:
        return len(self._names)
