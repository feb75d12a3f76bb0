"""What a pipeline stage decides for a request (see :mod:`tenantry.proxy.pipeline`)."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from tenantry.protocol.scanner import Chunk
from tenantry.protocol.schema import Message


@dataclass(slots=True, frozen=True)
class Answer:
    """Answer the request with `response` (at `version`, if not the request's); then drain if `drain` says why."""

    response: Message
    drain: str | None = None
    version: int | None = None


@dataclass(slots=True, frozen=True)
class AnswerBytes:
    """Answer with these bytes as they are (SASL tokens without a Kafka header, or nothing at all)."""

    chunks: list[Chunk]
    drain: str | None = None


@dataclass(slots=True, frozen=True)
class Close:
    reason: str
    api_key: int | None = None  # the API that caused it, for the log line


@dataclass(slots=True, frozen=True)
class Suspend:
    """Wait for `until`; its result is this stage's outcome (None: go on with the next stage)."""

    until: Coroutine[Any, Any, Outcome | None]


@dataclass(slots=True, frozen=True)
class Forward:
    expects_response: bool  # False for Produce with acks=0


Outcome = Answer | AnswerBytes | Close | Suspend | Forward
