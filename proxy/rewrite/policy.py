"""The APIs a tenant may use, and up to which version: deny by default.

An API is listed only when every field of it that names a topic, group, transactional id or topic id
is rewritten and every listing it returns is filtered. Anything else is absent from ApiVersions and
closes the connection if sent. Share groups (KIP-932) and streams groups (KIP-1071) are not yet
offered; ACL, quota, SCRAM, log-dir, reassignment and every broker-to-broker API never will be.
"""

from __future__ import annotations

from tenantry.protocol.schema import Versions

SASL_HANDSHAKE, API_VERSIONS, SASL_AUTHENTICATE = 17, 18, 36
PRE_AUTH_APIS = frozenset({SASL_HANDSHAKE, API_VERSIONS, SASL_AUTHENTICATE})

#: key -> highest version verified; the lowest is whatever the proxy and broker both support.
TENANT_API_MAX: dict[int, int | None] = {
    0: None,  # Produce
    1: None,  # Fetch
    2: None,  # ListOffsets
    3: None,  # Metadata
    8: None,  # OffsetCommit
    9: None,  # OffsetFetch
    10: None,  # FindCoordinator
    11: None,  # JoinGroup
    12: None,  # Heartbeat
    13: None,  # LeaveGroup
    14: None,  # SyncGroup
    15: None,  # DescribeGroups
    16: None,  # ListGroups
    17: None,  # SaslHandshake
    18: None,  # ApiVersions
    19: None,  # CreateTopics
    20: None,  # DeleteTopics
    21: None,  # DeleteRecords
    22: None,  # InitProducerId
    23: None,  # OffsetForLeaderEpoch
    24: 3,  # AddPartitionsToTxn: v4+ is broker-to-broker
    25: None,  # AddOffsetsToTxn
    26: None,  # EndTxn
    28: None,  # TxnOffsetCommit
    32: None,  # DescribeConfigs
    33: None,  # AlterConfigs
    36: None,  # SaslAuthenticate
    37: None,  # CreatePartitions
    42: None,  # DeleteGroups
    44: None,  # IncrementalAlterConfigs
    47: None,  # OffsetDelete
    60: None,  # DescribeCluster
    61: None,  # DescribeProducers
    65: None,  # DescribeTransactions
    66: None,  # ListTransactions
    68: None,  # ConsumerGroupHeartbeat
    69: None,  # ConsumerGroupDescribe
    75: None,  # DescribeTopicPartitions
}


def tenant_table(table: dict[int, Versions]) -> dict[int, Versions]:
    """The part of a proxy/broker version table a tenant may use."""
    out = {}
    for key, versions in table.items():
        if key not in TENANT_API_MAX:
            continue
        cap = TENANT_API_MAX[key]
        hi = versions.hi if cap is None or versions.hi is None else min(cap, versions.hi)
        if hi is None or versions.lo <= hi:
            out[key] = Versions(versions.lo, hi)
    return out
