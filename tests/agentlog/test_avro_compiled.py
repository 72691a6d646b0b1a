"""The compiled Avro codec: fastavro's bytes and values, for every record and for random values; loud on bad input."""

from __future__ import annotations

import contextlib
import copy
import io
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agentlog.avro_compiled import AvroDecodeError, Codec, UnsupportedSchema, codec_for, compile_codec
from agentlog.errors import DecodeError
from agentlog.events import EVENT_TYPES
from agentlog.samples import sample_record
from agentlog.schema_store import RecordSchema, default_store
from agentlog.serde import Serde

STORE = default_store()
RECORDS = sorted(STORE.records)
PROPERTY_RECORDS = [
    "agentlog.spawn.SpawnRequested",
    "agentlog.decision.SpawnApproved",
    "agentlog.decision.SpawnDenied",
    "agentlog.lifecycle.TokensConsumed",
    "agentlog.lifecycle.AgentCompleted",
    "agentlog.message.Handoff",
    "agentlog.policy.PolicyPublished",
]
INT_EDGES = [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, -8193, 2**31 - 1, -(2**31)]
LONG_EDGES = [*INT_EDGES, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63)]

KITCHEN_SINK = {
    "type": "record",
    "name": "Sink",
    "namespace": "test",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "single", "type": "float"},
        {"name": "real", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": [f"C{i}" for i in range(70)]}},
        {"name": "again", "type": "Color"},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "anything",
            "type": ["null", "boolean", "int", "long", "double", "string", "bytes", {"type": "array", "items": "long"}],
        },
        {"name": "floaty", "type": ["null", "float", "double"]},
        {"name": "maybe_color", "type": ["null", "Color"]},
        {"name": "maybe_when", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        {"name": "labels", "type": {"type": "map", "values": ["null", "string"]}},
        {
            "name": "points",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Point",
                    "fields": [
                        {"name": "x", "type": "int"},
                        {"name": "tags", "type": {"type": "array", "items": "string"}},
                    ],
                },
            },
        },
        {"name": "nested", "type": {"type": "map", "values": {"type": "array", "items": "Point"}}},
        {"name": "maybe_point", "type": ["null", "Point"]},
        {"name": "nothing", "type": "null"},
    ],
}


def fastavro_encode(parsed: Any, value: Any) -> bytes:
    body = io.BytesIO()
    schemaless_writer(body, parsed, value)
    return body.getvalue()


def fastavro_decode(parsed: Any, body: bytes) -> Any:
    return schemaless_reader(io.BytesIO(body), parsed, None)


def codec(name: str) -> Codec:
    compiled = codec_for(STORE.get(name))
    assert compiled is not None
    return compiled


def assert_like_fastavro(compiled: Codec, parsed: Any, value: Any) -> bytes:
    """Encode and decode ``value`` both ways; bytes and decoded values must be equal."""
    body = compiled.encode(value)
    assert body == fastavro_encode(parsed, value)
    decoded = compiled.decode(body)
    assert decoded == fastavro_decode(parsed, body)
    return body


# --- Values ------------------------------------------------------------------------------------


def strategy(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Random values of an expanded schema, covering edges: unicode, int widths, eras, empty containers."""
    if isinstance(schema, list):
        return st.one_of([strategy(branch, named) for branch in schema])
    if isinstance(schema, str):
        if schema in named:
            return strategy(named[schema], named)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.sampled_from(INT_EDGES) | st.integers(-(2**31), 2**31 - 1),
            "long": st.sampled_from(LONG_EDGES) | st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "bytes": st.binary(max_size=300),
            "string": st.text(max_size=20) | st.text(min_size=60, max_size=9000).filter(lambda s: len(s) > 60),
        }[schema]
    kind = schema["type"]
    if kind in ("record", "enum"):
        named[f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")] = schema
    logical = schema.get("logicalType")
    if logical == "uuid":
        return st.uuids()
    if logical == "timestamp-micros":
        zones = st.just(UTC) | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23)))
        return st.datetimes(datetime(2, 1, 1), datetime(9998, 12, 31, 23, 59, 59, 999999), timezones=zones)
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: strategy(f["type"], named) for f in schema["fields"]})
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(strategy(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), strategy(schema["values"], named), max_size=3)
    return strategy(kind, named)


def sparse(schema: Any, value: Any, named: dict[str, Any]) -> Any:
    """``value`` with every union that may be null set to null and every array and map emptied."""
    if isinstance(schema, list):
        return None if "null" in schema else value
    if isinstance(schema, str):
        return sparse(named[schema], value, named) if schema in named else value
    kind = schema["type"]
    if kind in ("record", "enum"):
        named[f"{schema.get('namespace', '')}.{schema['name']}".lstrip(".")] = schema
    if kind == "record":
        return {f["name"]: sparse(f["type"], value[f["name"]], named) for f in schema["fields"]}
    if kind == "array":
        return []
    if kind == "map":
        return {}
    return value


def enum_fields(schema: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """Path and symbols of each enum-typed field (not in arrays or unions), including nested records."""
    for field in schema["fields"]:
        kind = field["type"]
        if isinstance(kind, dict) and kind["type"] == "enum":
            yield (*path, field["name"]), kind["symbols"]
        elif isinstance(kind, dict) and kind["type"] == "record":
            yield from enum_fields(kind, (*path, field["name"]))


# --- Every record of the contract -------------------------------------------------------------------


@pytest.mark.parametrize("name", RECORDS)
def test_every_record_encodes_and_decodes_like_fastavro(name: str) -> None:
    """The full sample of each event record: fastavro's bytes, fastavro's decoded value, the sample itself."""
    record = STORE.get(name)
    value = sample_record(record)
    assert assert_like_fastavro(codec(name), record.parsed, value)
    assert codec(name).decode(codec(name).encode(value)) == value


@pytest.mark.parametrize("name", RECORDS)
def test_every_record_with_nulls_and_empty_containers(name: str) -> None:
    """The sample with every nullable union null and every array and map empty encodes like fastavro."""
    record = STORE.get(name)
    value = sparse(record.expanded, sample_record(record), {})
    assert_like_fastavro(codec(name), record.parsed, value)
    assert codec(name).decode(codec(name).encode(value)) == value


def with_each_enum_symbol(record: RecordSchema) -> Iterator[dict[str, Any]]:
    """The record's sample with each symbol of each of its enum fields in turn."""
    for path, symbols in enum_fields(record.expanded):
        for symbol in symbols:
            value = copy.deepcopy(sample_record(record))
            *parents, leaf = path
            target = value
            for parent in parents:
                target = target[parent]
            target[leaf] = symbol
            yield value


@pytest.mark.parametrize("name", RECORDS)
def test_every_enum_symbol(name: str) -> None:
    """Each symbol of each enum field of each record encodes and decodes like fastavro."""
    record = STORE.get(name)
    for value in with_each_enum_symbol(record):
        assert_like_fastavro(codec(name), record.parsed, value)


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_model_dump_encodes_like_fastavro(name: str) -> None:
    """What ``Serde.encode`` hands the encoder (a model's dump, StrEnum members included) gives fastavro's bytes."""
    record = STORE.get(name)
    dumped = EVENT_TYPES[name].model_validate(sample_record(record)).model_dump()
    assert_like_fastavro(codec(name), record.parsed, dumped)


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_a_model_encoded_by_attribute_gives_its_dumps_bytes(name: str) -> None:
    """``Serde.encode``'s path: the model's attributes read directly, fastavro's bytes of its dump, for the sample,
    the sample with every nullable field null and every container empty, and every enum symbol."""
    record = STORE.get(name)
    values = [sample_record(record), sparse(record.expanded, sample_record(record), {})]
    values += with_each_enum_symbol(record)
    for value in values:
        model = EVENT_TYPES[name].model_validate(value)
        assert codec(name).encode_model(model, b"\xc3\x01") == b"\xc3\x01" + fastavro_encode(
            record.parsed, model.model_dump()
        )


def test_the_codec_is_cached_per_fingerprint() -> None:
    """Asking twice for a schema's codec compiles it once."""
    record = STORE.get("TokensConsumed")
    assert codec_for(record) is codec_for(record)


def test_prefix_offset_and_memoryview() -> None:
    """The encoder writes after a prefix; the decoder reads from an offset of bytes or a memoryview."""
    compiled = codec("TokensConsumed")
    value = sample_record(STORE.get("TokensConsumed"))
    body = compiled.encode(value)
    framed = compiled.encode(value, b"\xc3\x01header")
    assert framed == b"\xc3\x01header" + body
    assert compiled.decode(framed, 8) == value
    assert compiled.decode(memoryview(framed), 8) == value
    assert compiled.decode(bytearray(body)) == value


# --- Random values -------------------------------------------------------------------------------------

_SLOW = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", PROPERTY_RECORDS)
@_SLOW
@given(data=st.data())
def test_random_records_encode_like_fastavro_and_round_trip(name: str, data: st.DataObject) -> None:
    """Random values (unicode, int edges, nulls, empty and full containers, datetimes of any era and offset)."""
    record = STORE.get(name)
    value = data.draw(strategy(record.expanded, {}))
    body = assert_like_fastavro(codec(name), record.parsed, value)
    assert codec(name).decode(body) == value
    with contextlib.suppress(ValidationError):  # a value the model takes: by attribute, the same bytes
        assert codec(name).encode_model(EVENT_TYPES[name].model_validate(value)) == body


KITCHEN_SINK_CODEC = compile_codec(KITCHEN_SINK, "test.Sink")
KITCHEN_SINK_PARSED = parse_schema(copy.deepcopy(KITCHEN_SINK))


@_SLOW
@given(value=strategy(KITCHEN_SINK, {}))
def test_every_construct_encodes_like_fastavro(value: dict[str, Any]) -> None:
    """A schema with every supported construct: floats, bytes, maps, 70-symbol enums, unions picked by Python type."""
    assert_like_fastavro(KITCHEN_SINK_CODEC, KITCHEN_SINK_PARSED, value)


@given(value=st.floats(allow_nan=True) | st.integers(-(2**31), 2**31))
def test_union_branches_and_nan_like_fastavro(value: float) -> None:
    """Numbers pick the branch fastavro picks (``int``, else ``long``; ``double`` over ``float``), NaN included."""
    schema = {
        "type": "record",
        "name": "N",
        "fields": [{"name": "n", "type": ["null", "float", "int", "long", "double"]}],
    }
    compiled = compile_codec(schema, "N")
    assert compiled.encode({"n": value}) == fastavro_encode(parse_schema(schema), {"n": value})


def test_uuid_strings_and_naive_datetimes_like_fastavro(monkeypatch: pytest.MonkeyPatch) -> None:
    """A uuid given as str is written as is; a naive datetime is local time, as fastavro reads it."""
    record = STORE.get("TokensConsumed")
    value = sample_record(record)
    value["meta"]["event_id"] = str(value["meta"]["event_id"])
    value["meta"]["causation_id"] = "not-a-uuid-but-fastavro-writes-it"
    assert codec("TokensConsumed").encode(value) == fastavro_encode(record.parsed, value)
    try:
        for zone in ("UTC", "America/New_York", "Asia/Kolkata"):
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            for naive in (datetime(2026, 7, 1, 12, 30, 0, 5), datetime(1969, 12, 31, 23, 59, 59, 999999)):
                value["meta"]["occurred_at"] = naive
                assert codec("TokensConsumed").encode(value) == fastavro_encode(record.parsed, value), zone
    finally:
        monkeypatch.undo()
        time.tzset()
    value["meta"]["occurred_at"] = 1_767_323_045_678_901  # an int is taken as the microseconds
    assert codec("TokensConsumed").encode(value) == fastavro_encode(record.parsed, value)


def test_decoded_timestamps_and_uuids_are_what_fastavro_returns() -> None:
    """Decoded timestamps are aware UTC datetimes and uuids are ``uuid.UUID``, down to ``is_safe``."""
    record = STORE.get("TokensConsumed")
    body = codec("TokensConsumed").encode(sample_record(record))
    ours, theirs = codec("TokensConsumed").decode(body)["meta"], fastavro_decode(record.parsed, body)["meta"]
    assert ours["occurred_at"].tzinfo is theirs["occurred_at"].tzinfo is UTC
    assert type(ours["event_id"]) is uuid.UUID
    assert ours["event_id"].is_safe == theirs["event_id"].is_safe
    assert ours["event_id"] == theirs["event_id"] and hash(ours["event_id"]) == hash(theirs["event_id"])


# --- Values the compiled encoder does not take ---------------------------------------------------------

ODD_VALUES = [
    ("tokens", 1.5),
    ("tokens", 2.0),
    ("tokens", True),
    ("tokens", 2**63),
    ("tokens", "7"),
    ("model", 5),
    ("model", b"bytes"),
    ("model", ("string", "tuple notation")),
    ("agent_id", None),
    ("agent_id", uuid.UUID(int=1)),
]


@pytest.mark.parametrize(("field", "odd"), ODD_VALUES, ids=[f"{f}={v!r}" for f, v in ODD_VALUES])
def test_odd_values_raise_or_match_and_serde_answers_as_fastavro(field: str, odd: Any) -> None:
    """An odd value makes the encoder raise or write fastavro's bytes; Serde then writes or raises as fastavro."""
    record = STORE.get("TokensConsumed")
    value = sample_record(record)
    value[field] = odd
    try:
        expected: bytes | type[Exception] = fastavro_encode(record.parsed, value)
    except Exception as e:
        expected = type(e)
    with contextlib.suppress(KeyError, TypeError, AttributeError, ValueError, OverflowError):
        assert codec("TokensConsumed").encode(value) == expected
    serde = Serde(STORE)
    if isinstance(expected, bytes):
        assert serde.encode_value(record.full_name, value, "t")[10:] == expected
    else:
        with pytest.raises(expected):
            serde.encode_value(record.full_name, value, "t")


def test_serde_fills_in_defaults_of_missing_fields_like_fastavro() -> None:
    """A field left out is written as its default: Serde hands such a value to fastavro."""
    record = STORE.get("SpawnRequested")
    value = sample_record(record)
    for defaulted in ("requested_spawn_budget", "max_runtime_ms", "capabilities", "context_inheritance"):
        del value[defaulted]
    with pytest.raises(KeyError):
        codec("SpawnRequested").encode(value)
    assert Serde(STORE).encode_value(record.full_name, value, "t")[10:] == fastavro_encode(record.parsed, value)


# --- Malformed input -------------------------------------------------------------------------------------

SMALL = {
    "type": "record",
    "name": "Small",
    "fields": [
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "u", "type": ["null", "long"]},
        {"name": "f", "type": "boolean"},
        {"name": "s", "type": "string"},
        {"name": "xs", "type": {"type": "array", "items": "long"}},
    ],
}
SMALL_CODEC = compile_codec(SMALL, "Small")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x02\x02\x0e\x01\x02a", "^Small: input ends early, after 6 bytes"),
        (b"\x02\x02\x0e\x01\x02a\x00\x00", "^1 trailing bytes after Small"),
        (b"\x04\x00\x01\x00\x00", r"^e: enum index 2 at byte 0 is not in 0\.\.1"),
        (b"\x01\x00\x01\x00\x00", r"^e: enum index -1 at byte 0"),
        (b"\x02\x04\x01\x00\x00", r"^u: union index 2 at byte 1 is not in 0\.\.1"),
        (b"\x02\x03\x01\x00\x00", r"^u: union index -2 at byte 1"),
        (b"\x02\x00\x02\x00\x00", "^f: boolean byte 2 at byte 2 is neither 0 nor 1"),
        (b"\x02\x00\x01\x03a\x00", "^negative length -2 at byte 3"),
        (b"\x02\x00\x01\x04\xff\xfe\x00", "not valid UTF-8"),
        (b"\x02\x00\x01\x00\x02" + b"\xff" * 10 + b"\x01\x00", "^varint longer than 10 bytes"),
        (b"\x02\x00\x01\x00\x10\x02\x00", "^block of 8 items at byte 5 but only 2 bytes left"),
        (b"", "^Small: input ends early, after 0 bytes"),
    ],
)
def test_malformed_input_raises_saying_why(data: bytes, reason: str) -> None:
    """Truncation, trailing bytes, bad enum/union/boolean, negative length, bad UTF-8, long varint, huge count."""
    with pytest.raises(AvroDecodeError, match=reason):
        SMALL_CODEC.decode(data)


def test_the_small_schema_decodes_its_good_bytes() -> None:
    """The bytes the malformed cases start from are valid (so each case breaks one thing)."""
    value = {"e": "B", "u": 7, "f": True, "s": "a", "xs": [1]}
    assert SMALL_CODEC.encode(value) == b"\x02\x02\x0e\x01\x02a\x02\x02\x00"
    assert SMALL_CODEC.decode(b"\x02\x02\x0e\x01\x02a\x02\x02\x00") == value
    assert SMALL_CODEC.decode(b"\x02\x02\x0e\x01\x02a\x01\x02\x02\x00") == value  # a block with its byte size


@pytest.mark.parametrize("name", ["agentlog.spawn.SpawnRequested", "agentlog.decision.SpawnApproved"])
def test_every_truncation_and_extension_of_a_record_raises(name: str) -> None:
    """No prefix of a record's bytes decodes, nor the bytes with anything appended."""
    compiled = codec(name)
    body = compiled.encode(sample_record(STORE.get(name)))
    for cut in range(len(body)):
        with pytest.raises(AvroDecodeError):
            compiled.decode(body[:cut])
    with pytest.raises(AvroDecodeError, match="trailing bytes"):
        compiled.decode(body + b"\x00")


def test_serde_reports_compiled_decode_errors_as_decode_errors() -> None:
    """Through Serde, a bad body is a DecodeError naming the record and the reason."""
    serde = Serde(STORE)
    value = sample_record(STORE.get("TokensConsumed")) | {"partial_result": None}
    data = serde.encode_value("TokensConsumed", value, "t")
    with pytest.raises(DecodeError, match=r"body does not match agentlog.lifecycle.TokensConsumed: .*union index 2"):
        serde.decode_value(data[:-1] + b"\x04")  # `partial_result` is the last field: its union index


# --- Schemas not compiled ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "bytes", "logicalType": "decimal", "precision": 4},
        {"type": "int", "logicalType": "date"},
        ["null", {"type": "map", "values": "long"}, {"type": "record", "name": "R", "fields": []}],
        {"type": "array", "items": "null"},
        {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]},
    ],
    ids=["fixed", "decimal", "date", "ambiguous-union", "array-of-null", "recursive"],
)
def test_unsupported_schemas_are_refused_and_left_to_fastavro(field_type: Any) -> None:
    """Constructs outside our contract raise UnsupportedSchema; codec_for answers None for them."""
    schema = {"type": "record", "name": "X", "fields": [{"name": "x", "type": field_type}]}
    with pytest.raises(UnsupportedSchema):
        compile_codec(schema, "X")
    record = RecordSchema("X", schema, "", b"unsupported-" + repr(field_type).encode()[:20], None)
    assert codec_for(record) is None
