"""Every generated message, at every version, survives encode -> decode -> encode unchanged."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenantry.protocol import DecodeError, decode, encode, scan, splice
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


ALL_ENTITIES = frozenset({"addressNodeId", "addressHost", "addressPort", "topicName", "groupId", "transactionalId",
                          "topicId", "errorMessage"})


@pytest.mark.parametrize(("cls", "version"), CASES[::5])
@given(garbage=st.binary(max_size=200))
def test_scanner_on_garbage_raises_decode_error_only(cls, version, garbage):
    with contextlib.suppress(DecodeError):
        scan(cls, version, memoryview(garbage), 0, ALL_ENTITIES)


def entity_values(obj, version: int, flexible: bool) -> list:
    """The values of entity fields in wire order: regular fields, then tagged ones by tag."""
    regular, tagged = [], []
    for f in type(obj).FIELDS:
        if not f.in_version(version):
            continue
        value = getattr(obj, f.name)
        is_tagged = flexible and f.is_tagged(version)
        if is_tagged and value == f.default_value():
            continue  # not on the wire
        found = []
        items = value if f.array else [value]
        for item in items or []:
            if f.struct is not None:
                if item is not None:
                    found += entity_values(item, version, flexible)
            elif f.entity in ALL_ENTITIES:
                found.append(item)
        (tagged if is_tagged else regular).append((f.tag, found))
    return [v for _, found in regular for v in found] + [
        v for _, found in sorted(tagged, key=lambda t: t[0]) for v in found]


@pytest.mark.parametrize(("cls", "version"), CASES[::3])
@given(data=st.data())
def test_scanner_finds_exactly_the_entity_fields_decode_sees(cls, version, data):
    flexible = version in cls.FLEXIBLE_VERSIONS
    message = data.draw(struct_strategy(cls, version, flexible))
    wire = memoryview(encode(message, version))
    refs = scan(cls, version, wire, 0, ALL_ENTITIES)
    assert [r.value for r in refs] == entity_values(message, version, flexible)
    # Splicing every field back in with its own value reproduces the message exactly.
    assert b"".join(splice(wire, [(r, r.value) for r in refs])) == bytes(wire)


def test_null_in_a_field_that_is_never_null_is_a_decode_error():
    # Found by make fuzz: a null resources array in IncrementalAlterConfigs decoded to None and the rewrite
    # hook failed on it. Kafka refuses such a request ("non-nullable field was serialized as null").
    import pytest

    from tenantry.protocol import DecodeError, decode
    from tenantry.protocol.messages.incremental_alter_configs_request import IncrementalAlterConfigsRequest
    from tenantry.protocol.messages.sasl_handshake_request import SaslHandshakeRequest

    with pytest.raises(DecodeError, match="resources is null"):
        decode(IncrementalAlterConfigsRequest, b"\xff\xff\xff\xff\x00", 0)  # resources: null; validate_only
    with pytest.raises(DecodeError, match="mechanism is null"):
        decode(SaslHandshakeRequest, b"\xff\xff", 1)
