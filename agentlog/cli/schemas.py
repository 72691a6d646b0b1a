"""``agentlog schemas``: list, generate models, check compatibility, release, register."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agentlog import codegen, compat
from agentlog.cli.output import EXIT_FAILURE, fail, fail_for
from agentlog.errors import AgentlogError
from agentlog.schema_registry import SchemaRegistry
from agentlog.schema_store import SchemaStore, load_definitions, schemas_dir
from agentlog.serde import Serde
from agentlog.settings import get_settings
from agentlog.topics import topic_of

app = typer.Typer(help="The Avro contract.", no_args_is_help=True)

SchemasOption = Annotated[Path, typer.Option("--schemas", help="Folder of the .avsc files.")]


def _folder(path: Path | None) -> Path:
    return path if path is not None else schemas_dir()


@app.command("list")
def list_schemas(schemas: SchemasOption = None) -> None:  # type: ignore[assignment]
    """Every event record with its fingerprint and topic."""
    from agentlog.events import EVENT_TYPES

    store = SchemaStore(load_definitions(_folder(schemas)))
    table = Table("record", "fingerprint (single-object)", "topic")
    for name in store.names():
        table.add_row(name, store.records[name].fingerprint.hex(), topic_of(EVENT_TYPES[name]).name)
    Console().print(table)


@app.command("check")
def check(
    schemas: SchemasOption = None,  # type: ignore[assignment]
    against: Annotated[str, typer.Option(help="Git revision to compare with.")] = "HEAD",
) -> None:
    """Fail when a schema change breaks backward or forward compatibility.

    Compares the working tree's .avsc files with the last committed version and with
    every released version (schemas/released/*.json).
    """
    folder = _folder(schemas)
    try:
        compared, problems = compat.check(folder, against)
    except AgentlogError as e:
        fail_for(e)
    if not compared:
        fail("nothing to compare with: no committed schemas and no releases")
    print("compared with: " + "; ".join(compared))
    if problems:
        fail("incompatible schema change:\n  " + "\n  ".join(problems), EXIT_FAILURE)
    print("compatible: every record reads and is read by each compared version")


@app.command("generate")
def generate(
    schemas: SchemasOption = None,  # type: ignore[assignment]
    check_only: Annotated[bool, typer.Option("--check", help="Fail if the models are out of date.")] = False,
) -> None:
    """Regenerate agentlog/events/_models.py from the .avsc files."""
    folder = _folder(schemas)
    if check_only:
        if not codegen.MODELS_PATH.exists() or codegen.MODELS_PATH.read_text() != codegen.render(folder):
            fail("agentlog/events/_models.py is out of date: run `agentlog schemas generate`")
        print("models are up to date")
        return
    changed = codegen.generate(folder)
    print(f"{codegen.MODELS_PATH}: {'written' if changed else 'unchanged'}")


@app.command("release")
def release(
    version: Annotated[str, typer.Argument(help="Release name, e.g. v1.")],
    fixtures: Annotated[Path, typer.Option(help="Where the encoded samples go.")] = Path("tests/fixtures/schemas"),
    schemas: SchemasOption = None,  # type: ignore[assignment]
) -> None:
    """Freeze the current schemas as a release, with an encoded sample of every record.

    Writes schemas/released/VERSION.json (read by the decoder and the compatibility
    check) and FIXTURES/VERSION/<record>.bin + .json (decoded by the tests forever after).
    """
    from agentlog.samples import sample_record
    from agentlog.serde import to_jsonable

    folder = _folder(schemas)
    target = folder / "released" / f"{version}.json"
    if target.exists():
        fail(f"{target} exists: a release is never rewritten")
    store = SchemaStore(load_definitions(folder))
    serde = Serde(store)
    (fixtures / version).mkdir(parents=True, exist_ok=True)
    for name in store.names():
        value = sample_record(store.records[name])
        (fixtures / version / f"{name}.bin").write_bytes(serde.encode_value(name, value, "fixture"))
        (fixtures / version / f"{name}.json").write_text(
            json.dumps(to_jsonable(value), indent=2, sort_keys=True) + "\n"
        )
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps({n: store.records[n].expanded for n in store.names()}, indent=1) + "\n")
    print(f"released {len(store.records)} records as {version}: {target}, {fixtures / version}/")


@app.command("register")
def register() -> None:
    """Register every record under its subject at AGENTLOG_SCHEMA_REGISTRY_URL (explicit, never automatic)."""
    from agentlog.events import EVENT_TYPES

    settings = get_settings()
    if not settings.schema_registry_url:
        fail("AGENTLOG_SCHEMA_REGISTRY_URL is not set")
    registry = SchemaRegistry(settings.schema_registry_url)
    store = SchemaStore(load_definitions(schemas_dir()))
    try:
        for name in store.names():
            topic = settings.topic_prefix + topic_of(EVENT_TYPES[name]).name
            print(f"{registry.register(topic, store.records[name])}\t{topic}-{name}")
    except AgentlogError as e:
        fail_for(e)
