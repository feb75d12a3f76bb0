"""Which tenant owns each broker fetch session (KIP-227), so that no tenant can use another's.

Every tenant reaches the brokers as the proxy's service user, so the brokers' fetch-session caches are
shared: a Fetch naming another tenant's session id (and its epoch) would read that tenant's records,
advance its epoch, close it, or reveal that it exists. The proxy remembers who received each session
id from a broker and answers a Fetch naming an id its tenant never received as if it did not exist.
"""

from __future__ import annotations

from collections import OrderedDict


class FetchSessionOwners:
    """Session id -> tenant id, for the most recent `limit` sessions (the brokers keep far fewer).

    Session ids are random 31-bit numbers chosen by each broker; one table for all brokers can only
    confuse two tenants' sessions if two brokers choose the same id, and then a Fetch is refused, never
    allowed: its client starts a new session, as after any eviction.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._owners: OrderedDict[int, str] = OrderedDict()
        self._limit = limit

    def opened(self, session_id: int, tenant_id: str) -> None:
        """A broker gave `session_id` to a connection of `tenant_id`."""
        owners = self._owners
        if owners.get(session_id) == tenant_id:
            owners.move_to_end(session_id)
            return
        owners[session_id] = tenant_id
        if len(owners) > self._limit:
            owners.popitem(last=False)

    def owned_by(self, session_id: int, tenant_id: str) -> bool:
        return self._owners.get(session_id) == tenant_id

    def __len__(self) -> int:
        return len(self._owners)
