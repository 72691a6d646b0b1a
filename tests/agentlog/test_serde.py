"""Encoding and decoding: single-object encoding, the Confluent wire format, and bad bytes."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from agentlog.errors import DecodeError
from agentlog.events import EVENT_TYPES
from agentlog.samples import sample_record
from agentlog.schema_registry import SchemaRegistry
from agentlog.schema_store import default_store
from agentlog.serde import SINGLE_OBJECT_MAGIC, Serde

NAMES = sorted(EVENT_TYPES)


@pytest.mark.parametrize("name", NAMES)
def test_single_object_round_trip(name: str) -> None:
    """Every record survives model → bytes → model, framed as C3 01 + fingerprint."""
    serde = Serde()
    event = EVENT_TYPES[name].model_validate(sample_record(serde.store.get(name)))
    data = serde.encode(event, "topic")
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == serde.store.get(name).fingerprint
    assert serde.decode(data) == event


def test_fingerprint_is_the_avro_reference_value() -> None:
    """The CRC-64-AVRO of the schema "int" equals the Avro specification's value."""
    from fastavro.schema import fingerprint

    assert fingerprint('"int"', "CRC-64-AVRO") == "8f5c393f1ad57572"


@pytest.mark.parametrize("name", NAMES)
def test_confluent_wire_format_interoperates_with_confluent_kafka(name: str) -> None:
    """Our Confluent-framed bytes decode with confluent-kafka's AvroDeserializer, and theirs with ours."""
    url = f"mock://agentlog-{name}"
    client = SchemaRegistryClient.new_client({"url": url})
    registry = SchemaRegistry(url, client)
    store = default_store()
    record = store.get(name)
    topic = "agentlog.test"
    registry.register(topic, record)
    serde = Serde(registry=registry)
    value = sample_record(record)
    ours = serde.encode_value(name, value, topic)
    assert ours[:1] == b"\x00"
    context = SerializationContext(topic, MessageField.VALUE)
    theirs_decoded = AvroDeserializer(client)(ours, context)
    assert theirs_decoded == value
    serializer = AvroSerializer(
        client,
        json.dumps(record.expanded),
        conf={
            "auto.register.schemas": False,
            "use.latest.version": False,
            "subject.name.strategy": lambda ctx, rec: f"{ctx.topic}-{name}",
        },
    )
    theirs = serializer(value, context)
    assert serde.decode_value(theirs).value == value


def test_confluent_encoding_refuses_an_unregistered_schema() -> None:
    """With auto-registration off, encoding a schema the registry lacks is an error naming it."""
    serde = Serde(registry=SchemaRegistry("mock://agentlog-empty"))
    value = sample_record(default_store().get("TokensConsumed"))
    with pytest.raises(Exception, match="not registered"):
        serde.encode_value("agentlog.lifecycle.TokensConsumed", value, "t")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not an agentlog record"),
        (b"hello world", "not an agentlog record"),
        (b"\xc3\x01\x00\x00", "too short"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x00", "unknown schema fingerprint"),
        (b"\x00\x00\x00\x00\x07abc", "no schema registry"),
    ],
)
def test_undecodable_bytes_say_why(data: bytes, reason: str) -> None:
    """Bad bytes raise DecodeError with a reason, never a crash."""
    with pytest.raises(DecodeError, match=reason):
        Serde().decode_value(data)


def test_truncated_and_padded_bodies_are_rejected() -> None:
    """A body cut short or followed by extra bytes does not pass as a record."""
    serde = Serde()
    data = serde.encode_value(
        "agentlog.lifecycle.TokensConsumed", sample_record(serde.store.get("TokensConsumed")), "t"
    )
    with pytest.raises(DecodeError, match="does not match"):
        serde.decode_value(data[:-5])
    with pytest.raises(DecodeError, match="trailing bytes"):
        serde.decode_value(data + b"\x00\x00")
