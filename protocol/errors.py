"""Exceptions raised by the codec, and the Kafka error codes the proxy answers with."""

from __future__ import annotations

from enum import IntEnum


class ProtocolError(Exception):
    """Bytes that are not a valid Kafka message. The peer sent garbage or a truncated message."""


class FrameTooLarge(ProtocolError):
    """A frame's size prefix exceeds the configured maximum (or is negative)."""


class DecodeError(ProtocolError):
    """A message body does not parse according to its schema at the given version."""


class UnknownApi(ProtocolError):
    """The API key or version is not one the pinned schemas describe."""


class ErrorCode(IntEnum):
    """Kafka error codes the proxy itself answers with (see Kafka's Errors.java)."""

    NONE = 0
    UNKNOWN_SERVER_ERROR = -1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    NOT_COORDINATOR = 16
    INVALID_REQUEST = 42
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    CLUSTER_AUTHORIZATION_FAILED = 31
    UNSUPPORTED_SASL_MECHANISM = 33
    ILLEGAL_SASL_STATE = 34
    UNSUPPORTED_VERSION = 35
    POLICY_VIOLATION = 44
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    SECURITY_DISABLED = 54
    OPERATION_NOT_ATTEMPTED = 55
    SASL_AUTHENTICATION_FAILED = 58
    FETCH_SESSION_ID_NOT_FOUND = 70
    UNKNOWN_TOPIC_ID = 100
    THROTTLING_QUOTA_EXCEEDED = 89
    INVALID_REGULAR_EXPRESSION = 128
