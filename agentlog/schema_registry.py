"""Schema ids from a Confluent-compatible schema registry, for the Confluent wire format.

The registered text is the expanded schema with its docs and logical types (not the
Parsing Canonical Form), so that other clients decode timestamps and UUIDs as such.
Subjects follow the TopicRecordNameStrategy (``<topic>-<record full name>``) because one
agentlog topic carries several record types. Auto-registration is off: publish the schemas
with ``agentlog schemas register`` (an explicit, reviewed step); a missing schema is an error.
"""

from __future__ import annotations

import json

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from agentlog.errors import DecodeError, SchemaError
from agentlog.schema_store import RecordSchema, build_record


def subject_for(topic: str, schema: RecordSchema) -> str:
    """Registry subject of ``schema`` on ``topic``."""
    return f"{topic}-{schema.full_name}"


class SchemaRegistry:
    """Caches schema ids (for writing) and schemas by id (for reading)."""

    def __init__(self, url: str, client: SchemaRegistryClient | None = None) -> None:
        self.url = url
        # new_client: a ``mock://`` URL gives confluent-kafka's in-memory registry.
        self._client = client or SchemaRegistryClient.new_client({"url": url})
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, RecordSchema] = {}

    def id_for(self, topic: str, schema: RecordSchema) -> int:
        """Id of ``schema`` under its subject for ``topic``; raises if it is not registered."""
        key = (topic, schema.full_name)
        if key not in self._ids:
            subject = subject_for(topic, schema)
            try:
                registered = self._client.lookup_schema(subject, Schema(json.dumps(schema.expanded), "AVRO"))
            except SchemaRegistryError as e:
                raise SchemaError(
                    f"schema {schema.full_name} is not registered under subject {subject!r} at {self.url} "
                    f"(auto-registration is off; run `agentlog schemas register`): {e}"
                ) from e
            if registered.schema_id is None:
                raise SchemaError(f"registry at {self.url} returned no id for subject {subject!r}")
            self._ids[key] = registered.schema_id
        return self._ids[key]

    def register(self, topic: str, schema: RecordSchema) -> int:
        """Register ``schema`` under its subject for ``topic`` and return its id."""
        try:
            text = Schema(json.dumps(schema.expanded), "AVRO")
            schema_id: int = self._client.register_schema(subject_for(topic, schema), text)
        except SchemaRegistryError as e:
            raise SchemaError(f"cannot register {schema.full_name} at {self.url}: {e}") from e
        self._ids[(topic, schema.full_name)] = schema_id
        return schema_id

    def schema_for(self, schema_id: int) -> RecordSchema:
        """The writer schema with id ``schema_id``."""
        if schema_id not in self._schemas:
            try:
                found = self._client.get_schema(schema_id)
            except SchemaRegistryError as e:
                raise DecodeError(f"schema id {schema_id} unknown to {self.url}: {e}") from e
            if found.schema_str is None:
                raise DecodeError(f"schema id {schema_id} at {self.url} has no schema text")
            self._schemas[schema_id] = build_record(json.loads(found.schema_str))
        return self._schemas[schema_id]
