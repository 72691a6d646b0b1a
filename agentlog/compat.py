"""Schema compatibility under Avro's schema-resolution rules.

``backward``: the new schema reads data written with the old one.
``forward``: the old schema reads data written with the new one.
agentlog requires both (``FULL``) against the last committed version and every release.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from agentlog.schema_store import Schema, SchemaStore, load_definitions, released_schemas

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        kind = schema["type"]
        return _kind(kind) if isinstance(kind, (dict, list)) else str(kind)
    return str(schema)


def _unwrap(schema: Any) -> Any:
    """``{"type": "long", "logicalType": ...}`` and ``{"type": "string"}`` → the primitive."""
    if isinstance(schema, dict) and schema["type"] not in ("record", "enum", "array", "map", "fixed"):
        return _unwrap(schema["type"])
    return schema


def reader_problems(reader: Any, writer: Any, path: str) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer`` (empty if it can)."""
    reader, writer = _unwrap(reader), _unwrap(writer)
    rk, wk = _kind(reader), _kind(writer)
    if wk == "union":
        return [p for i, branch in enumerate(writer) for p in reader_problems(reader, branch, f"{path}<{i}>")]
    if rk == "union":
        if any(not reader_problems(branch, writer, path) for branch in reader):
            return []
        return [f"{path}: no branch of the reader union reads the writer's {wk}"]
    if rk != wk:
        if wk in _PROMOTIONS and rk in _PROMOTIONS[wk]:
            return []
        return [f"{path}: the writer's {wk} cannot be read as {rk}"]
    if rk == "record":
        return _record_problems(reader, writer, path)
    if rk == "enum":
        if _full(reader) != _full(writer):
            return [f"{path}: enum renamed from {_full(writer)} to {_full(reader)}"]
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            return [f"{path}: symbols {missing} unknown to the reader, which has no default symbol"]
        return []
    if rk == "array":
        return reader_problems(reader["items"], writer["items"], f"{path}[]")
    if rk == "map":
        return reader_problems(reader["values"], writer["values"], f"{path}{{}}")
    if rk == "fixed" and (_full(reader) != _full(writer) or reader["size"] != writer["size"]):
        return [f"{path}: fixed type changed"]
    return []


def _full(schema: Schema) -> str:
    return f"{schema.get('namespace', '')}.{schema['name']}".strip(".")


def _record_problems(reader: Schema, writer: Schema, path: str) -> list[str]:
    if _full(reader) != _full(writer) and _full(writer) not in reader.get("aliases", []):
        return [f"{path}: record renamed from {_full(writer)} to {_full(reader)}"]
    written = {f["name"]: f for f in writer["fields"]}
    for f in writer["fields"]:
        for alias in f.get("aliases", []):
            written.setdefault(alias, f)
    problems = []
    for field in reader["fields"]:
        name = f"{path}.{field['name']}" if path else field["name"]
        source = written.get(field["name"]) or next(
            (written[a] for a in field.get("aliases", []) if a in written), None
        )
        if source is None:
            if "default" not in field:
                problems.append(f"{name}: not in the writer's data and has no default")
        else:
            problems += reader_problems(field["type"], source["type"], name)
    return problems


def full_compatibility_problems(old: Schema, new: Schema, label: str) -> list[str]:
    """Problems in either direction between two expanded record schemas."""
    name = _full(new)
    backward = [f"{name} ({label}, backward: new reader, old data) {p}" for p in reader_problems(new, old, "")]
    forward = [f"{name} ({label}, forward: old reader, new data) {p}" for p in reader_problems(old, new, "")]
    return backward + forward


def check_against(current: SchemaStore, baseline: dict[str, Schema], label: str) -> list[str]:
    """Compare every record of ``baseline`` (full name → expanded schema) with ``current``."""
    problems = []
    for full_name, old in sorted(baseline.items()):
        if full_name not in current.records:
            problems.append(f"{full_name} ({label}): record removed")
            continue
        problems += full_compatibility_problems(old, current.records[full_name].expanded, label)
    return problems


def committed_baseline(folder: Path, ref: str = "HEAD") -> dict[str, Schema] | None:
    """Expanded records of ``schemas/`` at git ``ref``; None outside a git checkout."""
    try:
        top = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        relative = folder.resolve().relative_to(Path(top).resolve())
        listing = subprocess.run(
            ["git", "-C", top, "ls-tree", "--name-only", f"{ref}:{relative}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError):
        return None
    definitions = {}
    for name in listing:
        if name.endswith(".avsc"):
            text = subprocess.run(
                ["git", "-C", top, "show", f"{ref}:{relative}/{name}"], capture_output=True, text=True, check=True
            ).stdout
            schema = json.loads(text)
            definitions[_full(schema)] = schema
    if not definitions:
        return None
    return {n: r.expanded for n, r in SchemaStore(definitions).records.items()}


def check(folder: Path, ref: str = "HEAD") -> tuple[list[str], list[str]]:
    """Compatibility of the working tree's schemas with ``ref`` and every release.

    Returns ``(what was compared, problems)``.
    """
    current = SchemaStore(load_definitions(folder))
    compared, problems = [], []
    baseline = committed_baseline(folder, ref)
    if baseline is not None:
        compared.append(f"git {ref} ({len(baseline)} records)")
        problems += check_against(current, baseline, f"vs {ref}")
    for version, schemas in released_schemas(folder).items():
        compared.append(f"release {version} ({len(schemas)} records)")
        problems += check_against(current, {_full(s): s for s in schemas}, f"vs release {version}")
    return compared, problems
