"""Typed per-API hooks for the APIs whose messages a tenant rewrite must restructure, not just splice.

A module that owns a concern registers a hook for one API with :func:`on_request` or :func:`on_response`;
the hook takes that API's generated message class, so the type checker sees every field it touches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tenantry.protocol.messages.api_keys import ApiKey
from tenantry.protocol.schema import Message

if TYPE_CHECKING:
    from tenantry.proxy.rewrite.rewriter import RequestContext, Rewriter

M = TypeVar("M", bound=Message)
Hook = Callable[["Rewriter", M, int, "RequestContext"], None]

REQUEST_HOOKS: dict[int, Hook[Any]] = {}
RESPONSE_HOOKS: dict[int, Hook[Any]] = {}


class Refusal(Exception):
    """The request is answered by the proxy with an error; `response` is that answer."""

    def __init__(self, response: Message) -> None:
        super().__init__("refused")
        self.response = response


def _register(table: dict[int, Hook[Any]], *keys: ApiKey) -> Callable[[Hook[M]], Hook[M]]:
    def register(hook: Hook[M]) -> Hook[M]:
        for key in keys:
            if key in table:
                raise ValueError(f"{key.name} already has a hook: {table[key].__name__}")
            table[key] = hook
        return hook
    return register


def on_request(*keys: ApiKey) -> Callable[[Hook[M]], Hook[M]]:
    """Register a hook that runs after every entity field of the request got the tenant's prefix."""
    return _register(REQUEST_HOOKS, *keys)


def on_response(*keys: ApiKey) -> Callable[[Hook[M]], Hook[M]]:
    """Register a hook that runs on the response before its names are stripped."""
    return _register(RESPONSE_HOOKS, *keys)
