"""The C scanner (tenantry.protocol._native) and the Python reference agree on every message.

On valid messages of every API and version (the codec's own generators) they must report the same
refs: entity, span, value, layout and enclosing tagged fields. On damaged ones (truncated, a byte
changed, bytes inserted, garbage) they must both refuse with DecodeError, or both give the same refs.
`make test` builds the extension, so a missing one fails here rather than being skipped.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantry.protocol import DecodeError, encode, scanner
from tenantry.protocol.messages import DATA, REQUESTS, RESPONSES
from tenantry.protocol.messages.fetch_request import FetchRequest
from tenantry.protocol.scanner import scan_in_python
from tenantry.protocol.schema import Struct

from .strategies import struct_strategy

MESSAGES = [*REQUESTS.values(), *RESPONSES.values(), *DATA.values()]
CASES = [pytest.param(cls, v, id=f"{cls.__name__}-v{v}") for cls in MESSAGES
         for v in range(cls.VALID_VERSIONS.lo, cls.VALID_VERSIONS.hi + 1)]


def entities_of(cls: type[Struct], seen: set[type[Struct]] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    seen.add(cls)
    found = set()
    for f in cls.FIELDS:
        if f.entity:
            found.add(f.entity)
        if f.struct is not None and f.struct not in seen:
            found |= entities_of(f.struct, seen)
    return found


EVERY_ENTITY = frozenset().union(*(entities_of(cls) for cls in MESSAGES))


def draw_message(data, cls, version):
    return data.draw(struct_strategy(cls, version, version in cls.FLEXIBLE_VERSIONS))


def outcome(run, *args):
    try:
        return run(*args)
    except DecodeError:
        return DecodeError


def both(cls, version, wire: bytes, wanted: frozenset[str]):
    native = outcome(scanner.scan, cls, version, memoryview(wire), 0, wanted)
    python = outcome(scan_in_python, cls, version, memoryview(wire), 0, wanted)
    return native, python


def test_the_extension_is_built_and_used():
    assert scanner.SCANNER == "C", "make test builds tenantry.protocol._native; pip install -e . did not"
    assert {"topicName", "topicId", "records", "errorCode", "addressHost"} <= EVERY_ENTITY


@pytest.mark.parametrize(("cls", "version"), CASES)
@given(data=st.data())
@settings(max_examples=10)
def test_same_refs_on_valid_messages(cls, version, data):
    message = draw_message(data, cls, version)
    wire = encode(message, version)
    wanted = data.draw(st.sampled_from([EVERY_ENTITY, frozenset(entities_of(cls)) or EVERY_ENTITY,
                                        frozenset(data.draw(st.sets(st.sampled_from(sorted(EVERY_ENTITY)))))]))
    native, python = both(cls, version, wire, wanted)
    assert python is not DecodeError
    assert native == python


@pytest.mark.parametrize(("cls", "version"), CASES[::2])
@given(data=st.data())
@settings(max_examples=15)
def test_same_verdict_on_damaged_messages(cls, version, data):
    message = draw_message(data, cls, version)
    wire = bytearray(encode(message, version))
    damage = data.draw(st.sampled_from(["truncate", "change", "insert", "garbage"]))
    if damage == "truncate" and wire:
        del wire[data.draw(st.integers(0, len(wire) - 1)):]
    elif damage == "change" and wire:
        wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    elif damage == "insert":
        at = data.draw(st.integers(0, len(wire)))
        wire[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        wire = bytearray(data.draw(st.binary(max_size=300)))
    native, python = both(cls, version, bytes(wire), EVERY_ENTITY)
    assert native == python


@pytest.mark.parametrize("wire", [b"", b"\xff", b"\x80\x80\x80\x80\x80\x01", b"\x00" * 3,
                                  b"\x7f\xff\xff\xff" + b"\x00" * 20])
def test_hostile_lengths_are_refused_alike(wire):
    for version in (4, 12, 17):
        native, python = both(FetchRequest, version, wire, EVERY_ENTITY)
        assert native == python


def test_records_are_views_of_the_caller_buffer():
    from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData

    request = ProduceRequest(acks=1, topic_data=[TopicProduceData(name="orders", partition_data=[
        PartitionProduceData(index=0, records=b"batch" * 100)])])
    wire = encode(request, 9)
    refs = scanner.scan(ProduceRequest, 9, memoryview(wire), 0, frozenset({"records", "topicName"}))
    assert [r.entity for r in refs] == ["topicName", "records"]
    assert isinstance(refs[1].value, memoryview) and refs[1].value.obj is wire


def replacement(ref, draw):
    """A new value of the ref's type, as the rewriter makes them (names with and without a prefix)."""
    if ref.type == "string":
        return draw(st.one_of(st.none(), st.text(max_size=40), st.just("acme." + (ref.value or ""))))
    if ref.type == "uuid":
        return draw(st.uuids())
    if ref.type == "int32":
        return draw(st.integers(-(2**31), 2**31 - 1))
    if ref.type == "int16":
        return draw(st.integers(-(2**15), 2**15 - 1))
    return ref.value  # the C splice leaves other types to the reference


@pytest.mark.parametrize(("cls", "version"), CASES[::2])
@given(data=st.data())
@settings(max_examples=10)
def test_splice_gives_the_same_bytes(cls, version, data):
    from tenantry.protocol.scanner import splice, splice_in_python

    message = draw_message(data, cls, version)
    wire = memoryview(encode(message, version))
    refs = scan_in_python(cls, version, wire, 0, EVERY_ENTITY)
    changes = [(r, replacement(r, data.draw)) for r in refs if data.draw(st.booleans())]
    assert b"".join(splice(wire, changes)) == b"".join(splice_in_python(wire, changes))


def test_the_c_splice_makes_the_common_edits_itself():
    from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
    from tenantry.protocol.native import NATIVE

    request = ProduceRequest(acks=1, topic_data=[TopicProduceData(name="orders", partition_data=[
        PartitionProduceData(index=0, records=b"batch" * 100)])])
    for version in (8, 9):  # classic and compact strings
        wire = memoryview(encode(request, version))
        (ref,) = scanner.scan(ProduceRequest, version, wire, 0, frozenset({"topicName"}))
        parts = NATIVE.splice(wire, [(ref, "acme.orders")], 0)
        assert parts is not NotImplemented
        assert b"".join(parts) == encode(ProduceRequest(acks=1, topic_data=[TopicProduceData(
            name="acme.orders", partition_data=[PartitionProduceData(index=0, records=b"batch" * 100)])]), version)
        assert any(isinstance(p, memoryview) and p.obj is wire.obj for p in parts)  # the records are not copied


def test_topic_ids_are_whole_uuids():
    import uuid

    from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData

    topic_id = uuid.uuid4()
    wire = encode(ProduceRequest(acks=1, topic_data=[TopicProduceData(topic_id=topic_id, partition_data=[
        PartitionProduceData(index=0, records=b"x")])]), 13)
    (ref,) = scanner.scan(ProduceRequest, 13, memoryview(wire), 0, frozenset({"topicId"}))
    assert type(ref.value) is uuid.UUID and ref.value == topic_id and hash(ref.value) == hash(topic_id)
    assert str(ref.value) == str(topic_id) and ref.value.is_safe is uuid.SafeUUID.unknown
    assert {ref.value: 1}[topic_id] == 1


@given(api_key=st.sampled_from(sorted(REQUESTS)), version=st.integers(0, 20), corr=st.integers(-(2**31), 2**31 - 1),
       client_id=st.one_of(st.none(), st.text(max_size=30)), tags=st.binary(max_size=12), tail=st.binary(max_size=8),
       cut=st.integers(0, 60))
@settings(max_examples=2000)
def test_request_headers_parse_alike(api_key, version, corr, client_id, tags, tail, cut):
    import struct

    from tenantry.protocol.headers import parse_request_header, parse_request_header_in_python

    raw = b"" if client_id is None else client_id.encode("utf-8", "surrogatepass")
    frame = struct.pack(">hhih", api_key, version, corr, -1 if client_id is None else len(raw)) + raw + tags + tail
    for wire in (frame, frame[:cut]):
        native = outcome(parse_request_header, memoryview(wire))
        python = outcome(parse_request_header_in_python, memoryview(wire))
        assert native == python


def refused(run, *args):
    try:
        return run(*args)
    except (DecodeError, IndexError):  # the Python reference reads past a cut frame with IndexError
        return DecodeError


@given(api_key=st.sampled_from(sorted(REQUESTS)), version=st.integers(0, 20), frame=st.binary(max_size=24))
@settings(max_examples=2000)
def test_response_bodies_start_alike(api_key, version, frame):
    from tenantry.protocol.headers import response_body_offset, response_body_start, response_header_version
    from tenantry.protocol.native import NATIVE

    assert NATIVE.response_body_start(frame, api_key, version, {}) is NotImplemented  # unknown: the reference's
    native = refused(response_body_start, memoryview(frame), api_key, version)
    python = refused(response_body_offset, memoryview(frame), response_header_version(api_key, version))
    assert native == python


@given(frame=st.binary(max_size=12))
def test_request_headers_peek_alike(frame):
    from tenantry.protocol.headers import peek_request_header, peek_request_header_in_python

    assert outcome(peek_request_header, memoryview(frame)) == outcome(peek_request_header_in_python, memoryview(frame))


def test_the_c_paths_leak_no_objects():
    """Every C path (refs in and out of tagged fields, splice and its fallback, refusals, headers) run many
    times: the interpreter's count of allocated blocks does not grow (a lost reference would, per call)."""
    import gc
    import sys
    import uuid

    from tenantry.protocol.headers import encode_request_header, parse_request_header, response_body_start
    from tenantry.protocol.messages.fetch_response import FetchResponse
    from tenantry.protocol.messages.produce_request import PartitionProduceData, ProduceRequest, TopicProduceData
    from tenantry.protocol.scanner import splice

    from .test_scanner import fetch_with_node_endpoints

    request = ProduceRequest(transactional_id="tx", acks=1, topic_data=[TopicProduceData(
        name="orders", topic_id=uuid.uuid4(), partition_data=[PartitionProduceData(index=0, records=b"b" * 100)])])
    frames = [(ProduceRequest, v, memoryview(encode(request, v))) for v in (9, 13)]
    frames.append((FetchResponse, 16, memoryview(encode(fetch_with_node_endpoints(), 16))))
    header = memoryview(encode_request_header(0, 9, 1, "client") + b"body")

    def run(times: int) -> None:
        for _ in range(times):
            for cls, version, wire in frames:
                refs = scanner.scan(cls, version, wire, 0, EVERY_ENTITY)
                splice(wire, [(r, "acme.x") for r in refs if r.type == "string"])
                outcome(scanner.scan, cls, version, wire[:len(wire) // 2], 0, EVERY_ENTITY)
            parse_request_header(header)
            response_body_start(header, 1, 16)
            outcome(parse_request_header, memoryview(b"\x00\x01"))

    run(200)
    gc.collect()
    before = sys.getallocatedblocks()
    run(3000)
    gc.collect()
    assert sys.getallocatedblocks() - before < 300
