"""Encoding events to bytes and back.

Two wire formats, both read by :meth:`Serde.decode_value`:

* Avro single-object encoding (default): ``C3 01`` + 8-byte CRC-64-AVRO fingerprint of
  the writer schema (little-endian) + Avro binary body. Needs no registry: the writer
  schema is found by fingerprint among the contract's current and released schemas.
* Confluent wire format, when a schema registry is configured: ``00`` + 4-byte big-endian
  schema id + Avro binary body. Schemas are never auto-registered; a schema missing from
  the registry is an error.

The body is written and read by code compiled for each schema (:mod:`agentlog.avro_compiled`),
byte for byte what fastavro writes and reads, about twice as fast. fastavro still encodes what
the compiled encoder does not take (a field left out, to be filled with its default; a value
of the wrong type, to get fastavro's error) and decodes data written by an older schema,
which needs schema resolution.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastavro import schemaless_reader, schemaless_writer

from agentlog.avro_compiled import AvroDecodeError, codec_for
from agentlog.errors import DecodeError, SchemaError
from agentlog.events import EVENT_TYPES, Event
from agentlog.schema_store import RecordSchema, SchemaStore, default_store

if TYPE_CHECKING:  # the registry client is imported only where a registry is configured
    from agentlog.schema_registry import SchemaRegistry
    from agentlog.settings import Settings

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SINGLE_OBJECT_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_CONFLUENT_HEADER = 5

Encoding = Literal["single-object", "confluent"]


@dataclass(frozen=True)
class Decoded:
    """A decoded record: its (reader) schema, its value as plain Python, and how it was framed."""

    schema: RecordSchema
    value: dict[str, Any]
    encoding: Encoding

    @property
    def full_name(self) -> str:
        """Avro full name of the record."""
        return self.schema.full_name


class Serde:
    """Encodes event models and decodes bytes of either wire format."""

    def __init__(self, store: SchemaStore | None = None, registry: SchemaRegistry | None = None) -> None:
        self.store = store or default_store()
        self.registry = registry

    @classmethod
    def from_settings(cls, settings: Settings) -> Serde:
        """Single-object encoding, or the Confluent wire format when a registry URL is set."""
        registry = None
        if settings.schema_registry_url:
            from agentlog.schema_registry import SchemaRegistry

            registry = SchemaRegistry(settings.schema_registry_url)
        return cls(registry=registry)

    def encode(self, event: Event, topic: str) -> bytes:
        """Bytes of ``event`` in the configured wire format, for ``topic``.

        The compiled encoder reads the model's attributes; a value it does not take (it raises) goes the long
        way, through ``model_dump`` and fastavro, which writes it or says what is wrong.
        """
        schema = self.store.get(event.avro_name)
        header = self._header(schema, topic)
        codec = codec_for(schema)
        if codec is not None:
            try:
                return codec.encode_model(event, header)
            except Exception:
                pass
        return self._encode(schema, header, event.model_dump())

    def _header(self, schema: RecordSchema, topic: str) -> bytes:
        """The framing before the body: the single-object fingerprint, or the registry's id for ``topic``."""
        if self.registry is None:
            return SINGLE_OBJECT_MAGIC + schema.fingerprint
        return CONFLUENT_MAGIC + struct.pack(">I", self.registry.id_for(topic, schema))

    def encode_value(self, full_name: str, value: dict[str, Any], topic: str) -> bytes:
        """Bytes of a record given as plain Python (as ``model_dump`` yields it)."""
        schema = self.store.get(full_name)
        return self._encode(schema, self._header(schema, topic), value)

    @staticmethod
    def _encode(schema: RecordSchema, header: bytes, value: dict[str, Any]) -> bytes:
        """``header`` + the body of ``value``: compiled, or by fastavro for what the compiled encoder refuses."""
        codec = codec_for(schema)
        if codec is not None:
            try:
                return codec.encode(value, header)
            except Exception:
                pass  # fastavro fills in defaults of missing fields, or raises its own error
        body = io.BytesIO()
        body.write(header)
        schemaless_writer(body, schema.parsed, value)
        return body.getvalue()

    def matches(self, recorded: bytes, event: Event) -> bool:
        """Whether ``recorded`` holds ``event``, byte for byte, under the schema it was written with.

        ``event`` is encoded as the writer of ``recorded`` would have written it (same framing,
        same schema): fields that schema lacks, added to the contract since, are left out, so
        an old record matches today's event when everything it could hold agrees.
        """
        try:
            writer, _, offset = self._writer_of(recorded)
            if writer.full_name != event.avro_name:
                return False
            return self._encode_as(writer, recorded[:offset], event) == recorded
        except (DecodeError, ValueError, TypeError, KeyError, AttributeError):
            return False  # not framed as a record, or the event does not fit the older schema

    def _encode_as(self, writer: RecordSchema, header: bytes, event: Event) -> bytes:
        current = self.store.get(event.avro_name)
        if writer.fingerprint == current.fingerprint:
            codec = codec_for(current)
            if codec is not None:
                try:
                    return codec.encode_model(event, header)
                except Exception:
                    pass  # fastavro below gives the same bytes or its own error
        body = io.BytesIO()
        body.write(header)
        schemaless_writer(body, writer.parsed, event.model_dump())
        return body.getvalue()

    def _writer_of(self, data: bytes) -> tuple[RecordSchema, Encoding, int]:
        """The writer schema of a framed record, its framing and where its body starts."""
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < _SINGLE_OBJECT_HEADER:
                raise DecodeError(f"single-object record too short ({len(data)} bytes)")
            writer = self.store.writer(data[2:_SINGLE_OBJECT_HEADER])
            if writer is None:
                raise DecodeError(f"unknown schema fingerprint {data[2:_SINGLE_OBJECT_HEADER].hex()}")
            encoding: Encoding = "single-object"
            offset = _SINGLE_OBJECT_HEADER
        elif data[:1] == CONFLUENT_MAGIC and len(data) >= _CONFLUENT_HEADER:
            if self.registry is None:
                raise DecodeError("record is in Confluent wire format but no schema registry is configured")
            (schema_id,) = struct.unpack(">I", data[1:_CONFLUENT_HEADER])
            writer = self.registry.schema_for(schema_id)
            encoding = "confluent"
            offset = _CONFLUENT_HEADER
        else:
            head = data[:2].hex() or "empty"
            raise DecodeError(f"not an agentlog record: starts with {head}, expected c301 or 00")
        return writer, encoding, offset

    def record_name(self, data: bytes) -> str:
        """The Avro full name of a framed record, from its header alone (the body is not read)."""
        return self._writer_of(data)[0].full_name

    def decode_as_written(self, data: bytes) -> dict[str, Any]:
        """The value of a framed record under its writer schema (no defaults for fields added since)."""
        writer, _, offset = self._writer_of(data)
        try:
            value = schemaless_reader(io.BytesIO(data[offset:]), writer.parsed, None)
        except (EOFError, ValueError, IndexError, TypeError, KeyError, UnicodeDecodeError) as e:
            raise DecodeError(f"body does not match {writer.full_name}: {type(e).__name__}: {e}") from e
        if not isinstance(value, dict):
            raise DecodeError(f"{writer.full_name} did not decode to a record")
        return value

    def decode_value(self, data: bytes) -> Decoded:
        """Decode bytes of either wire format into the current reader schema's shape."""
        writer, encoding, offset = self._writer_of(data)
        try:
            reader = self.store.get(writer.full_name)
        except Exception as e:
            raise DecodeError(f"record {writer.full_name} is not part of this contract") from e
        codec = codec_for(reader) if writer.fingerprint == reader.fingerprint else None
        if codec is not None:
            try:
                return Decoded(reader, codec.decode(data, offset), encoding)
            except AvroDecodeError as e:
                raise DecodeError(f"body does not match {writer.full_name}: {e}") from e
        body = io.BytesIO(data[offset:])
        try:
            value = schemaless_reader(body, writer.parsed, None if reader is writer else reader.parsed)
        except (EOFError, ValueError, IndexError, TypeError, KeyError, UnicodeDecodeError) as e:
            raise DecodeError(f"body does not match {writer.full_name}: {type(e).__name__}: {e}") from e
        if body.tell() != len(data) - offset:
            raise DecodeError(f"{len(data) - offset - body.tell()} trailing bytes after {writer.full_name}")
        if not isinstance(value, dict):
            raise DecodeError(f"{writer.full_name} did not decode to a record")
        return Decoded(reader, value, encoding)

    def decode(self, data: bytes) -> Event:
        """Decode bytes into the event model of the contract."""
        decoded = self.decode_value(data)
        return EVENT_TYPES[decoded.full_name].model_validate(decoded.value)


def to_jsonable(value: Any) -> Any:
    """Plain Python from Avro (UUIDs, datetimes, bytes, enums) as JSON-ready values."""
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def dumps(value: Any) -> str:
    """Compact JSON of a decoded value."""
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)


__all__ = ["CONFLUENT_MAGIC", "SINGLE_OBJECT_MAGIC", "Decoded", "SchemaError", "Serde", "dumps", "to_jsonable"]
