"""Which APIs and versions the proxy offers clients: its own support intersected with the broker's."""

from __future__ import annotations

from tenantry.protocol.messages import LISTENERS, REQUESTS
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.api_versions_response import (
    ApiVersion,
    ApiVersionsResponse,
)
from tenantry.protocol.schema import Versions

#: APIs a broker serves that the proxy never forwards: SASL is the proxy's own business with its
#: clients, and these expose controller addresses the proxy does not rewrite.
_NOT_FORWARDED = {
    ApiKey.SASL_HANDSHAKE,
    ApiKey.SASL_AUTHENTICATE,
    ApiKey.DESCRIBE_QUORUM,  # controller endpoints
    ApiKey.ADD_RAFT_VOTER,
    ApiKey.REMOVE_RAFT_VOTER,
    ApiKey.ENVELOPE,  # broker to controller only
}

#: Version caps below what the schemas allow, for every client. AddPartitionsToTxn v4+ is for brokers only.
_CAPS: dict[int, int] = {ApiKey.ADD_PARTITIONS_TO_TXN: 3}


def proxy_versions() -> dict[int, Versions]:
    """The versions the proxy handles per API key, before meeting the broker."""
    table = {}
    for key, request in REQUESTS.items():
        if key in _NOT_FORWARDED or "broker" not in LISTENERS.get(key, frozenset()):
            continue
        valid = request.VALID_VERSIONS
        hi = valid.hi if key not in _CAPS else min(_CAPS[key], valid.hi if valid.hi is not None else _CAPS[key])
        table[key] = Versions(valid.lo, hi)
    table[ApiKey.API_VERSIONS] = REQUESTS[ApiKey.API_VERSIONS].VALID_VERSIONS
    return table


PROXY_VERSIONS = proxy_versions()


def intersect(upstream: ApiVersionsResponse) -> dict[int, Versions]:
    """Per key, [max(proxy min, broker min), min(proxy max, broker max)]; keys with no overlap drop out."""
    table: dict[int, Versions] = {}
    for api in upstream.api_keys:
        ours = PROXY_VERSIONS.get(api.api_key)
        if ours is None:
            continue
        lo = max(ours.lo, api.min_version)
        hi = api.max_version if ours.hi is None else min(ours.hi, api.max_version)
        if lo <= hi:
            table[api.api_key] = Versions(lo, hi)
    return table


def api_versions_response(table: dict[int, Versions], upstream: ApiVersionsResponse | None,
                          error_code: int = 0) -> ApiVersionsResponse:
    """The ApiVersions answer for clients, carrying the broker's feature information through."""
    response = ApiVersionsResponse(
        error_code=error_code,
        api_keys=[ApiVersion(api_key=k, min_version=v.lo, max_version=v.hi or 0)
                  for k, v in sorted(table.items())],
    )
    if upstream is not None:
        response.supported_features = upstream.supported_features
        response.finalized_features_epoch = upstream.finalized_features_epoch
        response.finalized_features = upstream.finalized_features
        response.zk_migration_ready = upstream.zk_migration_ready
    return response
