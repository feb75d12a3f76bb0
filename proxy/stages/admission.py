"""Stage: may this connection send this request at all? Login state, and the APIs and versions offered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry.protocol.headers import is_known, parse_request_header
from tenantry.proxy.exchange import Exchange
from tenantry.proxy.outcomes import Close, Outcome

if TYPE_CHECKING:
    from tenantry.proxy.stage_context import StageContext


def logged_in(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """Before login only ApiVersions and SASL are served; after the session expires, only SASL (KIP-368)."""
    auth = ctx.auth
    assert auth is not None
    if not auth.authenticated:
        return Close(f"API {ex.api_key} before authentication", ex.api_key)
    if auth.expired():
        return Close("SASL session expired without re-authentication")
    return None


def offered(ex: Exchange, ctx: StageContext) -> Outcome | None:
    """Only APIs and versions this connection was offered; the header is parsed once they are known."""
    allowed = ctx.version_table().get(ex.api_key)
    if allowed is None or ex.api_version not in allowed or not is_known(ex.api_key, ex.api_version):
        # As a broker does: a version it never advertised cannot be answered in a layout the
        # client can read, so the connection is closed (and logged at INFO, naming the tenant).
        tenant = ctx.tenant()
        to = f" to tenant {tenant.id}" if tenant is not None else ""
        return Close(f"{ctx.api_name(ex.api_key)} (API {ex.api_key}) v{ex.api_version} is not offered{to}",
                     ex.api_key)
    ex.header = parse_request_header(ex.frame)
    ctx.saw_client_id(ex.header.client_id)
    return None
