"""Log set-up: plain text for a terminal, or one JSON object per line for a log pipeline.

Lines about a client connection carry its context (peer, tenant, user, client id, and the API when
a line is about one request) as fields, so a log search can follow one tenant or one application.
Nothing here ever sees a password: the SASL code logs names and outcomes only.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter

#: Context fields a connection's log lines may carry, in the order the text format shows them.
CONTEXT = ("peer", "tenant", "user", "client_id", "api")
FORMATS = ("text", "json")


class TextFormatter(logging.Formatter):
    """The usual one-line format, with the connection's context appended in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [f"{k}={v}" for k in CONTEXT if (v := getattr(record, k, None)) not in (None, "")]
        return f"{line} [{' '.join(context)}]" if context else line


def json_formatter() -> logging.Formatter:
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


def configure(level: str, fmt: str) -> None:
    """Send the proxy's logs to stderr in the chosen format (replacing any earlier set-up)."""
    handler = logging.StreamHandler()
    handler.setFormatter(json_formatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # The client of the probe and of quota coordination, which log their own failures once each: aiokafka
    # would log every retry of an unreachable topic at ERROR.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


class ConnectionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that adds one connection's context (a dict updated as the connection learns it)."""

    def __init__(self, logger: logging.Logger, context: dict[str, Any]) -> None:
        super().__init__(logger, context)
        self.context = context

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**self.context, **(kwargs.get("extra") or {})}
        return msg, kwargs
