"""The Avro contract: documented, complete, and mirrored exactly by the generated models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentlog import codegen
from agentlog.events import EVENT_TYPES
from agentlog.schema_store import SchemaStore, load_definitions, schemas_dir
from agentlog.serde import Serde, to_jsonable
from agentlog.topics import DEPLOYED, topic_of

SCHEMAS = schemas_dir()
DEFINITIONS = load_definitions(SCHEMAS)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "schemas"


def test_generated_models_are_up_to_date() -> None:
    """agentlog/events/_models.py is exactly what the generator makes of the .avsc files."""
    assert codegen.MODELS_PATH.read_text() == codegen.render(SCHEMAS)


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_every_type_and_field_is_documented(name: str) -> None:
    """Every named type and every field carries a non-empty doc."""
    schema = DEFINITIONS[name]
    assert schema.get("doc", "").strip(), f"{name} has no doc"
    for field in schema.get("fields", []):
        assert field.get("doc", "").strip(), f"{name}.{field['name']} has no doc"


@pytest.mark.parametrize("name", sorted(n for n, s in DEFINITIONS.items() if s["type"] == "enum"))
def test_enums_have_a_default_symbol(name: str) -> None:
    """Enums name a default so that symbols can be added compatibly."""
    schema = DEFINITIONS[name]
    assert schema.get("default") in schema["symbols"]


def test_every_event_has_meta_and_a_topic() -> None:
    """Each event record carries the shared meta envelope and belongs to exactly one topic."""
    store = SchemaStore(DEFINITIONS)
    assert set(store.records) == set(EVENT_TYPES)
    for name, record in store.records.items():
        meta = next(f for f in record.expanded["fields"] if f["name"] == "meta")
        assert meta["type"]["name"] == "Meta"
        homes = [spec.name for spec in DEPLOYED if spec.accepts(name) and spec.records]
        assert homes == [topic_of(EVENT_TYPES[name]).name]


@pytest.mark.parametrize("name", sorted(EVENT_TYPES))
def test_model_fields_match_the_schema(name: str) -> None:
    """Field names, order and optionality of each model equal those of its .avsc."""
    record = SchemaStore(DEFINITIONS).records[name]
    model = EVENT_TYPES[name]
    assert list(model.model_fields) == [f["name"] for f in record.expanded["fields"]]
    for field in record.expanded["fields"]:
        has_default = "default" in field or (name, field["name"]) in codegen.DEFAULT_FACTORIES
        assert model.model_fields[field["name"]].is_required() is not has_default, field["name"]


def _released_part(actual: Any, expected: Any) -> Any:
    """``actual`` restricted, at every depth, to the fields ``expected`` has."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        return {k: _released_part(actual[k], expected[k]) for k in expected if k in actual}
    if isinstance(actual, list) and isinstance(expected, list) and len(actual) == len(expected):
        return [_released_part(a, e) for a, e in zip(actual, expected, strict=True)]
    return actual


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*/*.bin")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_released_fixtures_decode_with_the_current_reader(path: Path) -> None:
    """Bytes written by every released schema version still decode to the same values."""
    decoded = Serde().decode_value(path.read_bytes())
    expected = json.loads(path.with_suffix(".json").read_text())
    assert decoded.full_name == path.stem
    actual = to_jsonable(decoded.value)
    # Fields added since the release (nested records too) read as their defaults; the released ones are unchanged.
    assert _released_part(actual, expected) == expected
    EVENT_TYPES[decoded.full_name].model_validate(decoded.value)
