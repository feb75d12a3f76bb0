"""Tenantry's sans-I/O Kafka wire codec, generated from Apache Kafka's message schemas.

- :mod:`.framing`: size-prefixed frames from a byte stream.
- :mod:`.headers`: request/response headers.
- :mod:`.codec`: full decode/encode into typed objects (cold path).
- :mod:`.scanner`: find resource fields and splice replacements without decoding (hot path).
- :mod:`.messages`: the generated message classes and the registry by API key.

This package imports no asyncio and knows nothing about tenants.
"""

from tenantry.protocol.codec import decode, encode
from tenantry.protocol.errors import DecodeError, ErrorCode, FrameTooLarge, ProtocolError, UnknownApi
from tenantry.protocol.framing import FrameReader
from tenantry.protocol.scanner import Ref, scan, splice

__all__ = [
    "DecodeError",
    "ErrorCode",
    "FrameReader",
    "FrameTooLarge",
    "ProtocolError",
    "Ref",
    "UnknownApi",
    "decode",
    "encode",
    "scan",
    "splice",
]
