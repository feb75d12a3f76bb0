"""The APIs a tenant may use, and up to which version: deny by default.

An API is listed only when every field of it that names a topic, group, transactional id or topic id
is rewritten and every listing it returns is filtered. Anything else is absent from ApiVersions and
closes the connection if sent. Share groups (KIP-932) and streams groups (KIP-1071) are not yet
offered; quota changes, SCRAM, log-dir, reassignment and every broker-to-broker API never will be.
"""

from __future__ import annotations

from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.schema import Versions

#: API -> highest version verified (None: the newest both sides support); the lowest is whatever the
#: proxy and broker both support. AddPartitionsToTxn is capped for every client in :mod:`..api_versions`.
TENANT_API_MAX: dict[int, int | None] = {
    ApiKey.PRODUCE: None,
    ApiKey.FETCH: None,
    ApiKey.LIST_OFFSETS: None,
    ApiKey.METADATA: None,
    ApiKey.OFFSET_COMMIT: None,
    ApiKey.OFFSET_FETCH: None,
    ApiKey.FIND_COORDINATOR: None,
    ApiKey.JOIN_GROUP: None,
    ApiKey.HEARTBEAT: None,
    ApiKey.LEAVE_GROUP: None,
    ApiKey.SYNC_GROUP: None,
    ApiKey.DESCRIBE_GROUPS: None,
    ApiKey.LIST_GROUPS: None,
    ApiKey.SASL_HANDSHAKE: None,
    ApiKey.API_VERSIONS: None,
    ApiKey.CREATE_TOPICS: None,
    ApiKey.DELETE_TOPICS: None,
    ApiKey.DELETE_RECORDS: None,
    ApiKey.INIT_PRODUCER_ID: None,
    ApiKey.OFFSET_FOR_LEADER_EPOCH: None,
    ApiKey.ADD_PARTITIONS_TO_TXN: None,
    ApiKey.ADD_OFFSETS_TO_TXN: None,
    ApiKey.END_TXN: None,
    ApiKey.TXN_OFFSET_COMMIT: None,
    ApiKey.DESCRIBE_CONFIGS: None,
    ApiKey.ALTER_CONFIGS: None,
    ApiKey.SASL_AUTHENTICATE: None,
    ApiKey.CREATE_PARTITIONS: None,
    ApiKey.DELETE_GROUPS: None,
    ApiKey.INCREMENTAL_ALTER_CONFIGS: None,
    ApiKey.OFFSET_DELETE: None,
    ApiKey.DESCRIBE_CLUSTER: None,
    ApiKey.DESCRIBE_PRODUCERS: None,
    ApiKey.DESCRIBE_TRANSACTIONS: None,
    ApiKey.LIST_TRANSACTIONS: None,
    ApiKey.CONSUMER_GROUP_HEARTBEAT: None,
    ApiKey.CONSUMER_GROUP_DESCRIBE: None,
    ApiKey.DESCRIBE_TOPIC_PARTITIONS: None,
    ApiKey.DESCRIBE_CLIENT_QUOTAS: None,
    ApiKey.LIST_CONFIG_RESOURCES: None,
    ApiKey.DESCRIBE_ACLS: None,
    ApiKey.CREATE_ACLS: None,
    ApiKey.DELETE_ACLS: None,
}

#: Offered to tenants but answered by the proxy itself (:mod:`tenantry.proxy.stages.tenant_views`):
#: the broker's answer would be the whole cluster's. The rewriter refuses to forward them.
ANSWERED_BY_PROXY = frozenset({ApiKey.DESCRIBE_CLIENT_QUOTAS, ApiKey.LIST_CONFIG_RESOURCES, ApiKey.DESCRIBE_ACLS,
                               ApiKey.CREATE_ACLS, ApiKey.DELETE_ACLS})


#: API -> lowest version offered to tenants, where it is above what the proxy and broker support.
#: Metadata v0 reads an empty topic list as "every topic", so its requests cannot be narrowed to the
#: topics that exist (see :mod:`tenantry.proxy.stages.topic_creation`).
TENANT_API_MIN: dict[int, int] = {ApiKey.METADATA: 1}


def tenant_table(table: dict[int, Versions]) -> dict[int, Versions]:
    """The part of a proxy/broker version table a tenant may use."""
    out = {}
    for key, versions in table.items():
        if key not in TENANT_API_MAX:
            continue
        cap = TENANT_API_MAX[key]
        lo = max(versions.lo, TENANT_API_MIN.get(key, 0))
        hi = versions.hi if cap is None or versions.hi is None else min(cap, versions.hi)
        if hi is None or lo <= hi:
            out[key] = Versions(lo, hi)
    return out
