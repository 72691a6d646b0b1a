"""The Avro contract: loads ``schemas/*.avsc``, expands named references and fingerprints them.

Each ``.avsc`` file holds one named type and is called after its full name
(``agentlog.spawn.SpawnRequested.avsc``). Records refer to other named types by full name;
the store expands those references so that every record has a self-contained schema, whose
Parsing Canonical Form and CRC-64-AVRO fingerprint identify it in single-object encoding.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from agentlog.errors import SchemaError, UnknownRecordError

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})

Schema = dict[str, Any]


@dataclass(frozen=True)
class RecordSchema:
    """One record type of the contract, ready for encoding and decoding."""

    full_name: str
    expanded: Schema
    """The schema with every named reference replaced by its definition."""
    canonical: str
    """Parsing Canonical Form (the input of the fingerprint)."""
    fingerprint: bytes
    """CRC-64-AVRO of the canonical form, 8 bytes little-endian as single-object encoding wants."""
    parsed: Any
    """fastavro's parsed schema."""

    @property
    def name(self) -> str:
        """The short name, e.g. ``SpawnRequested``."""
        return self.full_name.rsplit(".", 1)[-1]


def schemas_dir() -> Path:
    """Folder of the ``.avsc`` files: shipped inside the wheel, or the repository's ``schemas/``."""
    shipped = Path(str(resources.files("agentlog"))) / "schemas"
    if shipped.is_dir():
        return shipped
    return Path(__file__).resolve().parent.parent / "schemas"


def load_definitions(folder: Path) -> dict[str, Schema]:
    """Read every ``.avsc`` of ``folder`` into a map full name → definition, checking names."""
    definitions: dict[str, Schema] = {}
    for path in sorted(folder.glob("*.avsc")):
        try:
            schema = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise SchemaError(f"{path.name}: not valid JSON: {e}") from e
        full_name = f"{schema.get('namespace', '')}.{schema.get('name', '')}".strip(".")
        if path.name != f"{full_name}.avsc":
            raise SchemaError(f"{path.name}: holds {full_name!r}; the file must be named {full_name}.avsc")
        definitions[full_name] = schema
    if not definitions:
        raise SchemaError(f"no .avsc files in {folder}")
    return definitions


def expand(schema: Any, definitions: dict[str, Schema], namespace: str = "", seen: frozenset[str] = frozenset()) -> Any:
    """Replace each named reference by its definition, once per record (Avro forbids redefinition)."""
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return schema
        name = schema if "." in schema else f"{namespace}.{schema}"
        if name in seen:
            return name
        if name not in definitions:
            raise SchemaError(f"reference to unknown type {schema!r}")
        return expand(copy.deepcopy(definitions[name]), definitions, namespace, seen)
    if isinstance(schema, list):
        return [expand(branch, definitions, namespace, seen) for branch in schema]
    out = dict(schema)
    kind = out.get("type")
    if kind in ("record", "enum", "fixed"):
        ns = out.get("namespace", namespace)
        seen = seen | {f"{ns}.{out['name']}"}
        namespace = ns
    if kind == "record":
        # Siblings share the names defined by earlier siblings: thread `seen` through.
        fields = []
        for field in out["fields"]:
            expanded_field = dict(field)
            expanded_field["type"] = expand(field["type"], definitions, namespace, seen)
            seen = seen | _named_in(expanded_field["type"], namespace)
            fields.append(expanded_field)
        out["fields"] = fields
    elif kind == "array":
        out["items"] = expand(out["items"], definitions, namespace, seen)
    elif kind == "map":
        out["values"] = expand(out["values"], definitions, namespace, seen)
    elif isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in _PRIMITIVES | {"enum", "fixed"}):
        out["type"] = expand(kind, definitions, namespace, seen)
    return out


def _named_in(schema: Any, namespace: str) -> frozenset[str]:
    """Full names of the types a (expanded) schema defines."""
    names: set[str] = set()
    if isinstance(schema, list):
        for branch in schema:
            names |= _named_in(branch, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed"):
            ns = schema.get("namespace", namespace)
            names.add(f"{ns}.{schema['name']}")
            for field in schema.get("fields", []):
                names |= _named_in(field["type"], ns)
        elif kind == "array":
            names |= _named_in(schema["items"], namespace)
        elif kind == "map":
            names |= _named_in(schema["values"], namespace)
        elif isinstance(kind, (dict, list)):
            names |= _named_in(kind, namespace)
    return frozenset(names)


def build_record(expanded: Schema) -> RecordSchema:
    """Fingerprint and parse one expanded record schema."""
    full_name = f"{expanded.get('namespace', '')}.{expanded['name']}".strip(".")
    parsed = parse_schema(copy.deepcopy(expanded), named_schemas={})
    canonical = to_parsing_canonical_form(parsed)
    # fastavro yields the CRC-64-AVRO bytes little-endian, as single-object encoding stores them.
    digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return RecordSchema(full_name, expanded, canonical, digest, parsed)


class SchemaStore:
    """Every record type of the contract, by full name, short name and fingerprint.

    ``history`` holds the schemas of released versions, so that data written by an
    older version still decodes (resolved against the current reader schema). They are
    parsed and fingerprinted the first time a fingerprint is not one of the current
    schemas' (:meth:`writer`), each distinct schema once: a process that only publishes, or
    reads only current data, never pays for them.
    """

    def __init__(self, definitions: dict[str, Schema], history: list[Schema] | None = None) -> None:
        self.definitions = definitions
        self.records: dict[str, RecordSchema] = {}
        for full_name, schema in definitions.items():
            if schema.get("type") == "record" and any(f["name"] == "meta" for f in schema["fields"]):
                self.records[full_name] = build_record(expand(schema, definitions))
        self._short = {r.name: r for r in self.records.values()}
        self._by_fingerprint: dict[bytes, RecordSchema] = {r.fingerprint: r for r in self.records.values()}
        self._history = history or []
        self._history_built = not self._history

    def writer(self, fingerprint: bytes) -> RecordSchema | None:
        """The schema, current or released, whose fingerprint is ``fingerprint`` (None: no version of ours)."""
        found = self._by_fingerprint.get(fingerprint)
        if found is None and not self._history_built:
            self._build_history()
            found = self._by_fingerprint.get(fingerprint)
        return found

    def _build_history(self) -> None:
        distinct = {json.dumps(old, sort_keys=True): old for old in self._history}
        for old in distinct.values():
            record = build_record(old)
            self._by_fingerprint.setdefault(record.fingerprint, record)
        self._history_built = True

    def get(self, name: str) -> RecordSchema:
        """The record called ``name`` (short like ``SpawnRequested`` or full)."""
        record = self.records.get(name) or self._short.get(name)
        if record is None:
            raise UnknownRecordError(name, sorted(self._short))
        return record

    def names(self) -> list[str]:
        """Full names of every event record, sorted."""
        return sorted(self.records)


def released_schemas(folder: Path) -> dict[str, list[Schema]]:
    """Released versions: ``schemas/released/<version>.json`` maps full name → expanded schema."""
    releases: dict[str, list[Schema]] = {}
    for path in sorted((folder / "released").glob("*.json")):
        releases[path.stem] = list(json.loads(path.read_text()).values())
    return releases


@lru_cache(maxsize=1)
def default_store() -> SchemaStore:
    """The contract shipped with this installation, with every released version."""
    folder = schemas_dir()
    history = [schema for schemas in released_schemas(folder).values() for schema in schemas]
    return SchemaStore(load_definitions(folder), history)
