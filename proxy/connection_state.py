"""A client connection's states, and the proxy's link to its broker, as tables: every legal move is here.

::

    client:  AUTHENTICATING --login--> ACTIVE --drain()--> DRAINING --outbox empty--> CLOSED
             (no tenants: starts ACTIVE)        any state --error / peer closed / refused login--> CLOSED

    broker:  NONE --first request that needs it--> CONNECTING --logged in--> OPEN
             OPEN --KIP-368 re-authentication starts--> REAUTHENTICATING --done--> OPEN
             CONNECTING, OPEN, REAUTHENTICATING --broker lost or refused--> LOST

A move not in a table is a bug: :func:`move` raises instead of letting the connection drift into a
state nobody designed for.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar


class ClientState(Enum):
    AUTHENTICATING = "authenticating"
    ACTIVE = "active"
    DRAINING = "draining"
    CLOSED = "closed"


class BrokerState(Enum):
    NONE = "none"
    CONNECTING = "connecting"
    OPEN = "open"
    REAUTHENTICATING = "re-authenticating"
    LOST = "lost"


CLIENT_MOVES: dict[ClientState, frozenset[ClientState]] = {
    ClientState.AUTHENTICATING: frozenset({ClientState.ACTIVE, ClientState.DRAINING, ClientState.CLOSED}),
    ClientState.ACTIVE: frozenset({ClientState.DRAINING, ClientState.CLOSED}),
    ClientState.DRAINING: frozenset({ClientState.CLOSED}),
    ClientState.CLOSED: frozenset(),
}

BROKER_MOVES: dict[BrokerState, frozenset[BrokerState]] = {
    BrokerState.NONE: frozenset({BrokerState.CONNECTING, BrokerState.LOST}),
    BrokerState.CONNECTING: frozenset({BrokerState.OPEN, BrokerState.LOST}),
    BrokerState.OPEN: frozenset({BrokerState.REAUTHENTICATING, BrokerState.LOST}),
    BrokerState.REAUTHENTICATING: frozenset({BrokerState.OPEN, BrokerState.LOST}),
    BrokerState.LOST: frozenset(),
}

S = TypeVar("S", ClientState, BrokerState)


class IllegalMove(RuntimeError):
    """A state change the tables above do not allow."""


def move(current: S, to: S) -> S:
    """`to`, if the tables allow moving there from `current` (staying put is always allowed)."""
    if to is current:
        return to
    moves: dict[S, frozenset[S]] = CLIENT_MOVES if isinstance(current, ClientState) else BROKER_MOVES  # type: ignore[assignment]
    if to not in moves[current]:
        raise IllegalMove(f"{type(current).__name__} cannot move from {current.value} to {to.value}")
    return to
