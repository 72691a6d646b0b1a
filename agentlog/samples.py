"""Deterministic sample values for any record of the contract.

Used for the encoded fixtures of released schemas and for round-trip tests of every
record type: every field is filled (unions with their non-null branch, arrays with one
item), so that each part of a schema is exercised.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from agentlog.schema_store import RecordSchema

SAMPLE_TIME = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
_NAMESPACE = uuid.UUID("6f1a0c52-3c55-4a55-9d43-5a8e0f1e0d11")


def sample_value(schema: Any, path: str, seed: int = 0, named: dict[str, Any] | None = None) -> Any:
    """A deterministic value for ``schema`` at field ``path``.

    ``named`` collects the named types met so far: an expanded schema defines each once
    and refers to it by full name afterwards.
    """
    named = {} if named is None else named
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        return sample_value(branches[0], path, seed, named)
    if isinstance(schema, str):
        if schema in named:
            return sample_value(named[schema], path, seed, named)
        return _primitive(schema, path, seed)
    if schema.get("type") in ("record", "enum"):
        named[f"{schema.get('namespace', '')}.{schema['name']}".strip(".")] = schema
    logical = schema.get("logicalType")
    if logical == "uuid":
        return uuid.uuid5(_NAMESPACE, f"{path}:{seed}")
    if logical == "timestamp-micros":
        return SAMPLE_TIME
    kind = schema["type"]
    if kind == "record":
        return {
            f["name"]: sample_value(f["type"], f"{path}.{f['name']}".lstrip("."), seed, named) for f in schema["fields"]
        }
    if kind == "enum":
        symbols = schema["symbols"]
        default = schema.get("default")
        return next((s for s in symbols if s != default), symbols[0])
    if kind == "array":
        return [sample_value(schema["items"], f"{path}.0", seed, named)]
    if kind == "map":
        return {"key": sample_value(schema["values"], f"{path}.key", seed, named)}
    return sample_value(kind, path, seed, named)


def _primitive(kind: str, path: str, seed: int) -> Any:
    values: dict[str, Any] = {
        "string": f"{path}-{seed}",
        "int": 7 + seed,
        "long": 1_000_000_007 + seed,
        "float": 0.5,
        "double": 0.25,
        "boolean": True,
        "bytes": path.encode(),
        "null": None,
    }
    return values[kind]


def sample_record(record: RecordSchema, seed: int = 0) -> dict[str, Any]:
    """A full sample of ``record`` as plain Python."""
    value: dict[str, Any] = sample_value(record.expanded, "", seed)
    return value
