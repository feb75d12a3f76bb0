"""Every generated message, at every version, survives encode -> decode -> encode unchanged."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantry.protocol import DecodeError, decode, encode
from tenantry.protocol.messages import DATA, REQUESTS, RESPONSES

from .strategies import struct_strategy

MESSAGES = [*REQUESTS.values(), *RESPONSES.values(), *DATA.values()]
CASES = [
    pytest.param(cls, v, id=f"{cls.__name__}-v{v}")
    for cls in MESSAGES
    for v in range(cls.VALID_VERSIONS.lo, cls.VALID_VERSIONS.hi + 1)  # "none" is (1, 0): no versions
]


def test_every_api_of_the_pinned_schemas_is_generated():
    assert len(REQUESTS) == len(RESPONSES) >= 90
    assert len(CASES) > 550  # 625 (message, version) pairs in Kafka 4.3.1


@pytest.mark.parametrize(("cls", "version"), CASES)
@given(data=st.data())
def test_round_trip(cls, version, data):
    message = data.draw(struct_strategy(cls, version, version in cls.FLEXIBLE_VERSIONS))
    wire = encode(message, version)
    decoded = decode(cls, wire, version)
    assert decoded == message
    assert encode(decoded, version) == wire


@pytest.mark.parametrize(("cls", "version"), CASES[::7])
@given(garbage=st.binary(max_size=200))
def test_garbage_raises_decode_error_only(cls, version, garbage):
    with contextlib.suppress(DecodeError):
        decode(cls, garbage, version)
