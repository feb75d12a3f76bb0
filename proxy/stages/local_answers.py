"""Stage: requests the proxy answers itself, without the broker (ApiVersions, and what it never serves)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol import ErrorCode, decode
from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.messages.describe_cluster_request import DescribeClusterRequest
from tenantry.protocol.messages.describe_cluster_response import DescribeClusterResponse
from tenantry.protocol.messages.sasl_authenticate_response import SaslAuthenticateResponse
from tenantry.protocol.messages.sasl_handshake_response import SaslHandshakeResponse
from tenantry.protocol.schema import Message
from tenantry.proxy.api_versions import api_versions_response
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Answer, Outcome
from tenantry.proxy.stages import acts_on
from tenantry.proxy.stages.login import SASL_VERSIONS

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext

BROKERS = 1  # DescribeCluster's endpoint_type for brokers; 2 asks for controllers


@acts_on(ApiKey.API_VERSIONS)
def api_versions(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """The versions this client may use: the proxy's, the broker's and the tenant policy's in common."""
    if ex.api_key != ApiKey.API_VERSIONS:
        return None
    table = ctx.version_table()
    if ex.api_version in table[ApiKey.API_VERSIONS]:
        return Answer(api_versions_response(table, ctx.broker_versions()))
    # KIP-511: a client newer than us gets a v0 answer with our ranges and picks a version from it.
    return Answer(api_versions_response(table, None, ErrorCode.UNSUPPORTED_VERSION), version=0)


@acts_on(ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE)
def sasl_refusal(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """Without tenants, answer SASL as a broker's plaintext listener does."""
    versions = SASL_VERSIONS.get(ex.api_key)
    if versions is None or ex.api_version not in versions:
        return None
    refusal: Message = (SaslHandshakeResponse if ex.api_key == ApiKey.SASL_HANDSHAKE else SaslAuthenticateResponse)(
        error_code=ErrorCode.ILLEGAL_SASL_STATE)
    return Answer(refusal)


@acts_on(ApiKey.DESCRIBE_CLUSTER)
def controllers(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """The proxy serves broker endpoints only: a DescribeCluster for the controllers is refused."""
    if ex.api_key != ApiKey.DESCRIBE_CLUSTER or ex.api_version < 1:
        return None
    request = decode(DescribeClusterRequest, ex.body, ex.api_version)
    if request.endpoint_type == BROKERS:
        return None
    return Answer(DescribeClusterResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                                          error_message="controller endpoints are not served through the proxy"))
