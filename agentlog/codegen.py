"""Generates the pydantic event models from the ``.avsc`` files.

The ``.avsc`` files are the single source of truth; ``agentlog/events/_models.py`` is
written by ``agentlog schemas generate`` and a test fails when it is out of date.
"""

from __future__ import annotations

import keyword
from pathlib import Path
from typing import Any

from agentlog.limits import LIMIT_ATTRIBUTE, MAX_CHARS, MAX_ITEMS, MAX_ITEMS_ATTRIBUTE
from agentlog.schema_store import Schema, load_definitions

MODELS_PATH = Path(__file__).resolve().parent / "events" / "_models.py"

# Fields filled in when a payload leaves them out: ids of new acts and the time they happen.
DEFAULT_FACTORIES = {
    ("agentlog.common.Meta", "event_id"): "uuid.uuid4",
    ("agentlog.common.Meta", "occurred_at"): "utc_now",
    ("agentlog.spawn.SpawnRequested", "request_id"): "uuid.uuid4",
    ("agentlog.lifecycle.BudgetTopUpRequested", "request_id"): "uuid.uuid4",
    ("agentlog.message.AgentRequest", "message_id"): "uuid.uuid4",
    ("agentlog.message.AgentQuestion", "message_id"): "uuid.uuid4",
    ("agentlog.message.AgentAlert", "message_id"): "uuid.uuid4",
    ("agentlog.message.Handoff", "message_id"): "uuid.uuid4",
    ("agentlog.message.DecisionRecorded", "message_id"): "uuid.uuid4",
}

_STRING_TYPES = {"id": "Id", "short": "ShortText", "text": "Text"}
"""The bounded string type of each kind of :mod:`agentlog.limits`."""

_PRIMITIVE_TYPES = {
    "boolean": "bool",
    "int": "Int32",
    "long": "Int64",
    "float": "float",
    "double": "float",
    "bytes": "bytes",
}

_HEADER = '''"""Event models generated from ``schemas/*.avsc`` by ``agentlog schemas generate``. Do not edit."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agentlog.events.types import Id, Int32, Int64, ShortText, Text, UtcDatetime, utc_now


class AvroRecord(BaseModel):
    """Base of every generated record: immutable, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    avro_name: ClassVar[str]


class Event(AvroRecord):
    """Base of every event: a record with a ``meta`` envelope."""

    meta: Meta
'''


def _short(full_name: str) -> str:
    return full_name.rsplit(".", 1)[-1]


def _full(name: str, namespace: str) -> str:
    return name if "." in name else f"{namespace}.{name}"


def _annotation(avro_type: Any, namespace: str, kind: str = "id") -> str:
    """The Python type of ``avro_type``; its strings (items and values included) are of ``kind``."""
    if avro_type == "string":
        return _STRING_TYPES[kind]
    if isinstance(avro_type, str):
        return _PRIMITIVE_TYPES.get(avro_type) or _short(_full(avro_type, namespace))
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        inner = " | ".join(_annotation(b, namespace, kind) for b in branches)
        return f"{inner} | None" if "null" in avro_type else inner
    logical = avro_type.get("logicalType")
    if logical == "uuid":
        return "uuid.UUID"
    if logical == "timestamp-micros":
        return "UtcDatetime"
    container = avro_type["type"]
    if container == "array":
        return f"list[{_annotation(avro_type['items'], namespace, kind)}]"
    if container == "map":
        return f"dict[Id, {_annotation(avro_type['values'], namespace, kind)}]"
    return _annotation(container, namespace, kind)


def _kind(full_name: str, field: dict[str, Any]) -> str:
    kind = field.get(LIMIT_ATTRIBUTE, "id")
    if kind not in MAX_CHARS:
        raise ValueError(f"{full_name}.{field['name']}: {LIMIT_ATTRIBUTE} {kind!r} is not one of {sorted(MAX_CHARS)}")
    return str(kind)


def _max_items(field: dict[str, Any]) -> str | None:
    """``max_length=…`` for a list or map field (nullable or not), else ``None``."""
    branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
    if any(isinstance(b, dict) and b.get("type") in ("array", "map") for b in branches):
        return f"max_length={int(field.get(MAX_ITEMS_ATTRIBUTE, MAX_ITEMS))}"
    return None


def _default(owner: str, field: dict[str, Any], annotation: str) -> str | None:
    factory = DEFAULT_FACTORIES.get((owner, field["name"]))
    if factory:
        return f"default_factory={factory}"
    if "default" not in field:
        return None
    value = field["default"]
    if value is None:
        return "default=None"
    if isinstance(value, list):
        return "default_factory=list"
    if isinstance(value, dict) and not value:
        return "default_factory=dict"
    if isinstance(value, dict):
        return f"default_factory=lambda: {annotation}.model_validate({value!r})"
    plain = ("uuid.UUID", *_STRING_TYPES.values())
    enum_type = annotation if isinstance(value, str) and annotation not in plain else None
    if enum_type:
        return f"default={enum_type}.{value}"
    return f"default={value!r}"


def _render_enum(schema: Schema) -> str:
    lines = [f"class {schema['name']}(StrEnum):", f'    """{schema["doc"]}"""', ""]
    lines += [f'    {symbol} = "{symbol}"' for symbol in schema["symbols"]]
    return "\n".join(lines)


def _render_record(full_name: str, schema: Schema) -> str:
    namespace = schema.get("namespace", "")
    is_event = any(f["name"] == "meta" for f in schema["fields"])
    base = "Event" if is_event else "AvroRecord"
    lines = [f"class {schema['name']}({base}):", f'    """{schema["doc"]}"""', ""]
    lines.append(f'    avro_name: ClassVar[str] = "{full_name}"')
    for field in schema["fields"]:
        name = field["name"]
        if keyword.iskeyword(name):
            raise ValueError(f"{full_name}.{name}: a Python keyword cannot be a field name")
        annotation = _annotation(field["type"], namespace, _kind(full_name, field))
        args = [a for a in (_default(full_name, field, annotation), _max_items(field)) if a]
        args.append(f"description={field['doc']!r}")
        lines.append(f"    {name}: {annotation} = Field({', '.join(args)})")
    return "\n".join(lines)


def render(schemas_folder: Path) -> str:
    """Python source of the models for every named type in ``schemas_folder``."""
    definitions = load_definitions(schemas_folder)
    enums = [s for s in definitions.values() if s["type"] == "enum"]
    records = {n: s for n, s in definitions.items() if s["type"] == "record"}
    parts = [_HEADER]
    parts += [_render_enum(s) for s in sorted(enums, key=lambda s: s["name"])]
    # Nested records first (no `meta`), then events; forward references resolve at the end.
    ordered = sorted(records.items(), key=lambda item: (any(f["name"] == "meta" for f in item[1]["fields"]), item[0]))
    parts += [_render_record(n, s) for n, s in ordered]
    names = sorted(s["name"] for s in records.values())
    parts.append("\n".join(f"{n}.model_rebuild()" for n in names))
    parts.append(
        "EVENT_TYPES: dict[str, type[Event]] = {\n"
        + "".join(
            f"    {_short(n)}.avro_name: {_short(n)},\n"
            for n, s in sorted(records.items())
            if any(f["name"] == "meta" for f in s["fields"])
        )
        + '}\n"""Every event model by Avro full name."""'
    )
    exported = sorted(["AvroRecord", "Event", "EVENT_TYPES", *(s["name"] for s in definitions.values())])
    parts.append("__all__ = [\n" + "".join(f'    "{n}",\n' for n in exported) + "]")
    return "\n\n\n".join(parts) + "\n"


def generate(schemas_folder: Path, target: Path = MODELS_PATH) -> bool:
    """Write the models; return whether the file changed."""
    source = render(schemas_folder)
    if target.exists() and target.read_text() == source:
        return False
    target.write_text(source)
    return True
