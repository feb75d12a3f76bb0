"""Broker addresses: which upstream address each node id has, and rewriting responses to the proxy's.

Every host and port a client can see (Metadata, FindCoordinator, DescribeCluster, and NodeEndpoints in
Produce, Fetch, ShareFetch and ShareAcknowledge responses) is replaced by the proxy's advertised host
and the deterministic port of that node's listener. The fields are found by the codec's scanner, so
the rest of the response, record batches included, is passed through as slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenantry.protocol.messages import RESPONSES
from tenantry.protocol.scanner import Chunk, Ref, scan, splice

ADDRESS_ENTITIES = frozenset({"addressNodeId", "addressHost", "addressPort"})

#: API key -> first response version that can carry a broker address.
ADDRESS_APIS: dict[int, int] = {
    0: 10,  # Produce: NodeEndpoints
    1: 16,  # Fetch: NodeEndpoints
    3: 0,  # Metadata
    10: 0,  # FindCoordinator
    60: 0,  # DescribeCluster
    78: 0,  # ShareFetch
    79: 0,  # ShareAcknowledge
}


def carries_addresses(api_key: int, version: int) -> bool:
    first = ADDRESS_APIS.get(api_key)
    return first is not None and version >= first


@dataclass(frozen=True, slots=True)
class Address:
    node_id: int
    host: str
    port: int


def find_addresses(api_key: int, version: int, frame: memoryview, body_offset: int) -> list[list[Ref]]:
    """Each broker address in a response as its [node id, host, port] refs, in wire order."""
    refs = scan(RESPONSES[api_key], version, frame, body_offset, ADDRESS_ENTITIES)
    return [refs[i:i + 3] for i in range(0, len(refs) - 2, 3)
            if [r.entity for r in refs[i:i + 3]] == ["addressNodeId", "addressHost", "addressPort"]]


def rewrite_addresses(frame: memoryview, triples: list[list[Ref]], advertised_host: str,
                      port_for: Any) -> list[Chunk]:
    """The frame with every address's host and port replaced; `port_for(node_id)` gives the port."""
    changes: list[tuple[Ref, Any]] = []
    for node_ref, host_ref, port_ref in triples:
        if node_ref.value < 0:  # "no coordinator yet" answers carry -1 and an empty host: leave them
            continue
        changes.append((host_ref, advertised_host))
        changes.append((port_ref, port_for(node_ref.value)))
    return splice(frame, changes)
